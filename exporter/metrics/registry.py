"""The registry that /metrics serves: every group of families, collected at each scrape."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector

from exporter.config.reload import ConfigReloader
from exporter.domain.tracker import CallTracker
from exporter.metrics.calls import call_metrics
from exporter.metrics.families import FamiliesCollector
from exporter.metrics.operation import (
    connection_metrics,
    relay_metrics,
    reload_metrics,
    request_metrics,
    state_metrics,
)
from exporter.relay.relay import Relay
from exporter.storage.health import StoreHealth
from exporter.web.connections import DroppedConnections
from exporter.web.requests import WebhookRequests


def create_registry(
    tracker: CallTracker,
    requests: WebhookRequests,
    *,
    relay: Relay | None = None,
    reloader: ConfigReloader | None = None,
    health: StoreHealth | None = None,
    connections: DroppedConnections | None = None,
    process_metrics: bool = True,
    clock_error: Callable[[], float] | None = None,
) -> CollectorRegistry:
    """A registry with the exporter's metrics, the relay's, reloads' and the state files' if
    any, and the process metrics; `clock_error` as `call_metrics` takes it."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(FamiliesCollector(lambda: call_metrics(tracker, clock_error)))
    registry.register(FamiliesCollector(lambda: request_metrics(requests)))
    if health is not None:
        registry.register(FamiliesCollector(lambda: state_metrics(health)))
    if relay is not None:
        registry.register(FamiliesCollector(lambda: relay_metrics(relay)))
    if reloader is not None:
        registry.register(FamiliesCollector(lambda: reload_metrics(reloader)))
    if connections is not None:
        registry.register(FamiliesCollector(lambda: connection_metrics(connections)))
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry
