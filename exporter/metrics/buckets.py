"""Histogram buckets, and the empty statistics that use them."""

from __future__ import annotations

from typing import Final

from exporter.domain.statistics import Statistics
from exporter.relay.relay import RelayStats
from exporter.web.requests import WebhookRequests

# Waits range from an instant pickup to minutes in a queue.
WAIT_BUCKETS: Final = (
    1.0,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
    600.0,
)
# Callbacks come minutes to days after the missed call; 3 d is the default expiry.
CALLBACK_DELAY_BUCKETS: Final = tuple(
    float(minutes * 60) for minutes in (1, 5, 15, 30, 60, 120, 240, 480, 1440, 2880, 4320, 10080)
)
# Calls range from seconds to hours.
DURATION_BUCKETS: Final = (
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    180.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    2700.0,
    3600.0,
    5400.0,
    7200.0,
    10800.0,
    14400.0,
)
REQUEST_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# An upstream answers in tens of milliseconds, or runs into the relay's deadline of seconds.
RELAY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


def new_statistics() -> Statistics:
    """Empty call statistics with this module's buckets."""
    return Statistics(WAIT_BUCKETS, DURATION_BUCKETS, callback_delay_buckets=CALLBACK_DELAY_BUCKETS)


def new_requests() -> WebhookRequests:
    """Empty webhook request counts with this module's buckets."""
    return WebhookRequests(REQUEST_BUCKETS)


def new_relay_stats() -> RelayStats:
    """Empty relay statistics with this module's buckets."""
    return RelayStats(RELAY_BUCKETS)
