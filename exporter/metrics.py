"""Every metric name, help text, label and bucket, made from the exporter's state at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import product
from typing import Any, Final

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.config.reload import ConfigReloader
from exporter.domain.callbacks import RESULTS as CALLBACK_RESULTS
from exporter.domain.calls import ANSWERERS, EXPIRED, OUTCOMES, STATES
from exporter.domain.events import DIRECTIONS, EVENT_NAMES, IN, KNOWN_CAUSES, TOO_MANY_FIELDS
from exporter.domain.labels import LABELS, OTHER
from exporter.domain.statistics import Histogram, Statistics
from exporter.domain.tracker import CallTracker
from exporter.relay.relay import EVENTS as RELAY_EVENTS
from exporter.relay.relay import OUTCOMES as RELAY_OUTCOMES
from exporter.relay.relay import Relay, RelayStats
from exporter.storage.health import PARTS as STATE_PARTS
from exporter.storage.health import StoreHealth
from exporter.web.connections import DROP_REASONS, DroppedConnections
from exporter.web.guard import REASONS as GUARD_REASONS
from exporter.web.requests import INVALID, WebhookRequests

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

UNKNOWN_EVENT: Final = "unknown"
INVALID_EVENT: Final = INVALID
CAUSES: Final = (*KNOWN_CAUSES, "other")
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
WAIT_OUTCOMES: Final = tuple(outcome for outcome in OUTCOMES if outcome != EXPIRED)
EXPECTED_REQUESTS: Final = (
    *((event, "200") for event in (*EVENT_NAMES, UNKNOWN_EVENT)),
    *((INVALID_EVENT, code) for code in REJECT_CODES),
)

# Answered calls, their talk time and outgoing calls, by team and by user: metric name,
# help text and the Statistics attribute that holds the counts.
_BREAKDOWNS: Final = {
    "team": (
        (
            "sipgate_team_calls_answered_total",
            "Incoming calls answered, by the team of the first person who answered.",
            "team_answered",
        ),
        (
            "sipgate_team_talk_seconds_total",
            "Talk time of those calls, first answer to last hangup.",
            "team_talk",
        ),
        (
            "sipgate_team_outgoing_calls_total",
            "Outgoing calls started, by the calling user's team.",
            "team_outgoing",
        ),
    ),
    "user": (
        (
            "sipgate_user_calls_answered_total",
            "Incoming calls answered, by the first person who answered.",
            "user_answered",
        ),
        (
            "sipgate_user_talk_seconds_total",
            "Talk time of those calls, first answer to last hangup.",
            "user_talk",
        ),
        (
            "sipgate_user_outgoing_calls_total",
            "Outgoing calls started, by the calling user.",
            "user_outgoing",
        ),
    ),
}


def new_statistics() -> Statistics:
    """Empty call statistics with this module's buckets."""
    return Statistics(WAIT_BUCKETS, DURATION_BUCKETS, callback_delay_buckets=CALLBACK_DELAY_BUCKETS)


def new_requests() -> WebhookRequests:
    """Empty webhook request counts with this module's buckets."""
    return WebhookRequests(REQUEST_BUCKETS)


def new_relay_stats() -> RelayStats:
    """Empty relay statistics with this module's buckets."""
    return RelayStats(RELAY_BUCKETS)


class FamiliesCollector(Collector):
    """Collects the metric families that `families` makes at each scrape."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()


def call_metrics(tracker: CallTracker) -> Iterator[Metric]:
    """A tracker's call statistics; every known label combination exists from the start."""
    reading = tracker.read()
    stats, active, values = reading.stats, reading.active, reading.labels
    lines = (*values.lines, OTHER)
    yield _counter(
        "sipgate_calls_total",
        "Calls started, counting the first leg only.",
        ["direction", "line"],
        _keyed(stats.calls_started, product(DIRECTIONS, lines)),
    )
    yield _counter(
        "sipgate_calls_ended_total",
        "Calls ended, by outcome.",
        ["direction", "outcome", "line"],
        _keyed(stats.calls_ended, product(DIRECTIONS, OUTCOMES, lines)),
    )
    yield _gauge(
        "sipgate_calls_active",
        "Calls in progress now.",
        ["direction", "state", "line"],
        _keyed(active, product(DIRECTIONS, STATES, lines)),
    )
    yield _histogram(
        "sipgate_call_wait_seconds",
        "Seconds from the first ring to the first answer, or to the last hangup if nobody "
        "answered.",
        ["direction", "outcome", "line"],
        stats.wait,
        product(DIRECTIONS, WAIT_OUTCOMES, lines),
        stats.wait_buckets,
    )
    yield _histogram(
        "sipgate_call_duration_seconds",
        "Seconds from the first answer to the last hangup.",
        ["direction", "answered_by", "line"],
        stats.duration,
        product(DIRECTIONS, ANSWERERS, lines),
        stats.duration_buckets,
    )
    yield from _service_level_metrics(stats, lines)
    yield _gauge(
        "sipgate_calls_ringing_since_timestamp_seconds",
        "Unix time at which the call ringing longest now started; 0 when none rings.",
        ["direction", "line"],
        _keyed(reading.ringing_since, product(DIRECTIONS, lines)),
    )
    yield from _callback_metrics(stats, reading.callbacks_pending, lines)
    yield from _breakdowns(stats, "team", (*values.teams, OTHER))
    if values.per_user:
        yield from _breakdowns(stats, "user", values.users)
    yield _counter(
        "sipgate_label_values_overflow_total",
        "Times a line, team or user past its configured cap was counted as 'other'.",
        ["label"],
        _keyed(stats.overflow, [(label,) for label in LABELS]),
    )
    yield from _event_metrics(stats)


def _service_level_metrics(stats: Statistics, lines: tuple[str, ...]) -> Iterator[Metric]:
    incoming = list(product((IN,), lines))
    for name, documentation, counts in (
        (
            "sipgate_calls_offered_total",
            "Incoming calls ended with any outcome but expired, short abandons left out.",
            stats.offered,
        ),
        (
            "sipgate_calls_answered_in_target_total",
            "Incoming calls a person answered within the line's --calls.service-level-target.",
            stats.answered_in_target,
        ),
        (
            "sipgate_calls_abandoned_total",
            "Incoming calls missed after ringing at least the line's --calls.short-abandon.",
            stats.abandoned,
        ),
        (
            "sipgate_calls_short_abandoned_total",
            "Incoming calls missed after ringing less than the line's --calls.short-abandon.",
            stats.short_abandoned,
        ),
        (
            "sipgate_calls_answered_unnamed_total",
            "Incoming calls answered, but by no user sipgate named: a queue, a pickup, an "
            "external phone.",
            stats.answered_unnamed,
        ),
    ):
        yield _counter(name, documentation, ["direction", "line"], _keyed(counts, incoming))


def _callback_metrics(
    stats: Statistics, pending: Mapping[str, int], lines: tuple[str, ...]
) -> Iterator[Metric]:
    by_line = [(line,) for line in lines]
    yield _gauge(
        "sipgate_callbacks_pending",
        "Missed callers owed a callback now: no answered call back or call again yet.",
        ["line"],
        _keyed(pending, by_line),
    )
    yield _counter(
        "sipgate_callbacks_total",
        "Callback debts closed: called_back, called_again or expired.",
        ["line", "result"],
        _keyed(stats.callbacks, product(lines, CALLBACK_RESULTS)),
    )
    yield _histogram(
        "sipgate_callback_delay_seconds",
        "Seconds from the end of a caller's first missed call to the answer that settled it.",
        ["line"],
        {(line,): histogram for line, histogram in stats.callback_delay.items()},
        by_line,
        stats.callback_delay_buckets,
    )
    yield _counter(
        "sipgate_callbacks_dropped_total",
        "Callback debts dropped, oldest first, to stay within --callbacks.max-pending.",
        [],
        [((), stats.callbacks_dropped)],
    )


def _event_metrics(stats: Statistics) -> Iterator[Metric]:
    yield _counter(
        "sipgate_hangups_total",
        "Hangup events of call legs, by cause.",
        ["direction", "cause"],
        _keyed(stats.hangups, product(DIRECTIONS, CAUSES)),
    )
    yield _counter(
        "sipgate_dtmf_events_total", "DTMF events received.", [], [((), stats.dtmf_events)]
    )
    yield GaugeMetricFamily(
        "sipgate_webhook_last_received_timestamp_seconds",
        "Unix time of the last valid webhook event, 0 before the first.",
        value=stats.last_received,
    )
    yield _counter(
        "sipgate_events_unmatched_total",
        "Events for unknown call ids, or repeats of an event already counted.",
        ["event"],
        _keyed(stats.unmatched, [(name,) for name in EVENT_NAMES]),
    )
    yield _counter(
        "sipgate_calls_evicted_total",
        "Calls ended as expired early because --calls.max-open calls were in progress.",
        [],
        [((), stats.evicted)],
    )
    yield _gauge(
        "sipgate_exporter_build_info",
        "Build information; always 1.",
        ["version"],
        [((__version__,), 1)],
    )


def request_metrics(requests: WebhookRequests) -> Iterator[Metric]:
    """Webhook requests by event and status, refusals by reason, and request durations."""
    stats = requests.read()
    yield _counter(
        "sipgate_webhook_requests_total",
        "Webhook requests, by event and HTTP status code.",
        ["event", "code"],
        _keyed(stats.requests, EXPECTED_REQUESTS),
    )
    yield _counter(
        "sipgate_webhook_rejected_requests_total",
        "Webhook requests refused, by reason.",
        ["reason"],
        _keyed(stats.rejected, [(reason,) for reason in REJECT_REASONS]),
    )
    yield _histogram(
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
    yield _counter(
        "sipgate_relay_requests_total",
        "Events relayed to the upstream application, by final outcome; 'retried' counts "
        "failed attempts that were tried again, 'dropped' events the full queue refused.",
        ["event", "outcome"],
        _keyed(stats.requests, product(RELAY_EVENTS, RELAY_OUTCOMES)),
    )
    yield _histogram(
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
    yield _counter(
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
    """Writes to the state files that failed."""
    yield _counter(
        "sipgate_state_write_errors_total",
        "Writes to the state files that failed, by part: a journal write refuses its request "
        "with 500, a snapshot is tried again later.",
        ["part"],
        _keyed(health.write_errors(), [(part,) for part in STATE_PARTS]),
    )


def connection_metrics(dropped: DroppedConnections) -> Iterator[Metric]:
    """Connections the web servers' limits refused or closed."""
    yield _counter(
        "sipgate_web_connections_dropped_total",
        "Connections refused when accepted (source, per_client) or closed before their request "
        "had arrived (request_timeout, read_timeout), by reason, since the process started.",
        ["reason"],
        _keyed(dropped.read(), [(reason,) for reason in DROP_REASONS]),
    )


def create_registry(
    tracker: CallTracker,
    requests: WebhookRequests,
    *,
    relay: Relay | None = None,
    reloader: ConfigReloader | None = None,
    health: StoreHealth | None = None,
    connections: DroppedConnections | None = None,
    process_metrics: bool = True,
) -> CollectorRegistry:
    """A registry with the exporter's metrics, the relay's, reloads' and the state files' if
    any, and the process metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(FamiliesCollector(lambda: call_metrics(tracker)))
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


def _breakdowns(stats: Statistics, label: str, values: Iterable[str]) -> Iterator[Metric]:
    expected = [(value,) for value in values]
    for name, documentation, attribute in _BREAKDOWNS[label]:
        yield _counter(name, documentation, [label], _keyed(getattr(stats, attribute), expected))


def _keyed(
    values: Mapping[Any, float],
    expected: Iterable[tuple[str, ...]],
) -> list[tuple[tuple[str, ...], float]]:
    """Label tuples with values: the expected ones at 0 if unseen, plus any others seen."""
    found = {(key if isinstance(key, tuple) else (key,)): value for key, value in values.items()}
    rows = {key: found.get(key, 0) for key in expected}
    rows.update(found)
    return sorted(rows.items())


Rows = Iterable[tuple[tuple[str, ...], float]]


def _counter(name: str, documentation: str, labels: list[str], rows: Rows) -> Metric:
    return _filled(CounterMetricFamily(name, documentation, labels=labels), rows)


def _gauge(name: str, documentation: str, labels: list[str], rows: Rows) -> Metric:
    return _filled(GaugeMetricFamily(name, documentation, labels=labels), rows)


def _filled(family: CounterMetricFamily | GaugeMetricFamily, rows: Rows) -> Metric:
    for key, value in rows:
        family.add_metric(list(key), value)
    return family


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    histograms: Mapping[Any, Histogram],
    expected: Iterable[tuple[str, ...]],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key in sorted({*expected, *histograms}):
        histogram = histograms.get(key) or Histogram(bounds)
        buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
        family.add_metric(list(key), buckets, histogram.total)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
