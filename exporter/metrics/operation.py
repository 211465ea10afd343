"""The exporter's own work: webhook requests, connections, state files, reloads, the relay."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.config.reload import ConfigReloader
from exporter.domain.events import EVENT_NAMES, TOO_MANY_FIELDS
from exporter.metrics.families import counter_family, histogram_family, keyed
from exporter.relay.relay import EVENTS as RELAY_EVENTS
from exporter.relay.relay import OUTCOMES as RELAY_OUTCOMES
from exporter.relay.relay import Relay
from exporter.storage.health import StoreHealth
from exporter.web.connections import DROP_REASONS, DroppedConnections
from exporter.web.guard import REASONS as GUARD_REASONS
from exporter.web.requests import INVALID, WebhookRequests

UNKNOWN_EVENT: Final = "unknown"
INVALID_EVENT: Final = INVALID
REJECT_REASONS: Final = (
    *GUARD_REASONS,
    "content_type",
    "encoding",
    "missing_field",
    "invalid_field",
    TOO_MANY_FIELDS,
)
# Every status a refused webhook request can get: bad body, auth, signature or source, size.
REJECT_CODES: Final = ("400", "401", "403", "413")
EXPECTED_REQUESTS: Final = (
    *((event, "200") for event in (*EVENT_NAMES, UNKNOWN_EVENT)),
    *((INVALID_EVENT, code) for code in REJECT_CODES),
)


def request_metrics(requests: WebhookRequests) -> Iterator[Metric]:
    """Webhook requests by event and status, refusals by reason, and request durations."""
    stats = requests.read()
    yield counter_family(
        "sipgate_webhook_requests_total",
        "Webhook requests, by event and HTTP status code.",
        ["event", "code"],
        keyed(stats.requests, EXPECTED_REQUESTS),
    )
    yield counter_family(
        "sipgate_webhook_rejected_requests_total",
        "Webhook requests refused, by reason.",
        ["reason"],
        keyed(stats.rejected, [(reason,) for reason in REJECT_REASONS]),
    )
    yield histogram_family(
        "sipgate_webhook_request_duration_seconds",
        "Seconds taken to answer a webhook.",
        [],
        {(): stats.duration},
        [()],
        stats.duration.bounds,
    )


def relay_metrics(relay: Relay) -> Iterator[Metric]:
    """A relay's counters; every event and outcome exists from the start."""
    stats = relay.snapshot()
    yield counter_family(
        "sipgate_relay_requests_total",
        "Events relayed to the upstream application, by final outcome; 'retried' counts "
        "failed attempts that were tried again, 'dropped' events the full queue refused.",
        ["event", "outcome"],
        keyed(stats.requests, product(RELAY_EVENTS, RELAY_OUTCOMES)),
    )
    yield histogram_family(
        "sipgate_relay_request_duration_seconds",
        "Seconds one request to the upstream application took, by event.",
        ["event"],
        {(event,): histogram for event, histogram in stats.durations.items()},
        [(event,) for event in RELAY_EVENTS],
        stats.buckets,
    )


def reload_metrics(reloader: ConfigReloader) -> Iterator[Metric]:
    """How reloading the configuration file went."""
    status = reloader.status()
    yield counter_family(
        "sipgate_config_reloads_total",
        "Configuration reloads, by outcome.",
        ["outcome"],
        [((outcome,), count) for outcome, count in status.outcomes.items()],
    )
    yield GaugeMetricFamily(
        "sipgate_config_last_reload_successful",
        "Whether the last configuration reload worked (1) or failed (0).",
        value=1 if status.last_successful else 0,
    )
    yield GaugeMetricFamily(
        "sipgate_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful configuration load.",
        value=status.last_success_time,
    )


def state_metrics(health: StoreHealth) -> Iterator[Metric]:
    """Writes to the state that failed."""
    yield counter_family(
        "sipgate_state_write_errors_total",
        "Writes to the state that failed, by part: a journal write refuses its request with "
        "500, a snapshot is tried again later, a database transaction refuses it with 503.",
        ["part"],
        keyed(health.write_errors(), [(part,) for part in health.parts]),
    )


def connection_metrics(dropped: DroppedConnections) -> Iterator[Metric]:
    """Connections the web servers' limits refused or closed."""
    yield counter_family(
        "sipgate_web_connections_dropped_total",
        "Connections refused when accepted (source, per_client) or closed before their request "
        "had arrived (request_timeout, read_timeout), by reason, since the process started.",
        ["reason"],
        keyed(dropped.read(), [(reason,) for reason in DROP_REASONS]),
    )
