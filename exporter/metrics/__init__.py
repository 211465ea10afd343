"""Every metric name, help text, label and bucket, made from the exporter's state at scrape time.

One module per group: calls.py (the call statistics), operation.py (the exporter's own work),
buckets.py, families.py (building families from plain counts) and registry.py.
"""

from exporter.metrics.buckets import (
    CALLBACK_DELAY_BUCKETS,
    DURATION_BUCKETS,
    RELAY_BUCKETS,
    REQUEST_BUCKETS,
    WAIT_BUCKETS,
    new_relay_stats,
    new_requests,
    new_statistics,
)
from exporter.metrics.operation import REJECT_REASONS
from exporter.metrics.registry import create_registry

__all__ = [
    "CALLBACK_DELAY_BUCKETS",
    "DURATION_BUCKETS",
    "REJECT_REASONS",
    "RELAY_BUCKETS",
    "REQUEST_BUCKETS",
    "WAIT_BUCKETS",
    "create_registry",
    "new_relay_stats",
    "new_requests",
    "new_statistics",
]
