"""The call statistics: calls, waits and talk time, service level, callbacks, teams and users."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import product
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter import __version__
from exporter.domain.callbacks import RESULTS as CALLBACK_RESULTS
from exporter.domain.calls import ANSWERERS, EXPIRED, OUTCOMES, STATES
from exporter.domain.events import DIRECTIONS, EVENT_NAMES, IN, KNOWN_CAUSES
from exporter.domain.labels import LABELS, OTHER
from exporter.domain.statistics import Statistics
from exporter.domain.tracker import CallTracker
from exporter.metrics.families import counter_family, gauge_family, histogram_family, keyed

CAUSES: Final = (*KNOWN_CAUSES, "other")
WAIT_OUTCOMES: Final = tuple(outcome for outcome in OUTCOMES if outcome != EXPIRED)

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


def call_metrics(
    tracker: CallTracker, clock_error: Callable[[], float] | None = None
) -> Iterator[Metric]:
    """A tracker's call statistics; every known label combination exists from the start.

    `clock_error()` is how far the wall clock is ahead of the tracker's now: added to the
    times exported, since Prometheus subtracts them from its own wall clock.
    """
    reading = tracker.read()
    stats, active, values = reading.stats, reading.active, reading.labels
    error = clock_error() if clock_error is not None else 0.0
    ringing_since = {key: since + error for key, since in reading.ringing_since.items() if since}
    last_received = stats.last_received + error if stats.last_received else 0.0
    lines = (*values.lines, OTHER)
    yield counter_family(
        "sipgate_calls_total",
        "Calls started, counting the first leg only.",
        ["direction", "line"],
        keyed(stats.calls_started, product(DIRECTIONS, lines)),
    )
    yield counter_family(
        "sipgate_calls_ended_total",
        "Calls ended, by outcome.",
        ["direction", "outcome", "line"],
        keyed(stats.calls_ended, product(DIRECTIONS, OUTCOMES, lines)),
    )
    yield gauge_family(
        "sipgate_calls_active",
        "Calls in progress now.",
        ["direction", "state", "line"],
        keyed(active, product(DIRECTIONS, STATES, lines)),
    )
    yield histogram_family(
        "sipgate_call_wait_seconds",
        "Seconds from the first ring to the first answer, or to the last hangup if nobody "
        "answered.",
        ["direction", "outcome", "line"],
        stats.wait,
        product(DIRECTIONS, WAIT_OUTCOMES, lines),
        stats.wait_buckets,
    )
    yield histogram_family(
        "sipgate_call_duration_seconds",
        "Seconds from the first answer to the last hangup.",
        ["direction", "answered_by", "line"],
        stats.duration,
        product(DIRECTIONS, ANSWERERS, lines),
        stats.duration_buckets,
    )
    yield from _service_level_metrics(stats, lines)
    yield gauge_family(
        "sipgate_calls_ringing_since_timestamp_seconds",
        "Unix time at which the call ringing longest now started; 0 when none rings.",
        ["direction", "line"],
        keyed(ringing_since, product(DIRECTIONS, lines)),
    )
    yield from _callback_metrics(stats, reading.callbacks_pending, lines)
    yield from _breakdowns(stats, "team", (*values.teams, OTHER))
    if values.per_user:
        yield from _breakdowns(stats, "user", values.users)
    yield counter_family(
        "sipgate_label_values_overflow_total",
        "Times a line, team or user past its configured cap was counted as 'other'.",
        ["label"],
        keyed(stats.overflow, [(label,) for label in LABELS]),
    )
    yield from _event_metrics(stats, last_received)


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
        yield counter_family(name, documentation, ["direction", "line"], keyed(counts, incoming))


def _callback_metrics(
    stats: Statistics, pending: Mapping[str, int], lines: tuple[str, ...]
) -> Iterator[Metric]:
    by_line = [(line,) for line in lines]
    yield gauge_family(
        "sipgate_callbacks_pending",
        "Missed callers owed a callback now: no answered call back or call again yet.",
        ["line"],
        keyed(pending, by_line),
    )
    yield counter_family(
        "sipgate_callbacks_total",
        "Callback debts closed: called_back, called_again or expired.",
        ["line", "result"],
        keyed(stats.callbacks, product(lines, CALLBACK_RESULTS)),
    )
    yield histogram_family(
        "sipgate_callback_delay_seconds",
        "Seconds from the end of a caller's first missed call to the answer that settled it.",
        ["line"],
        {(line,): histogram for line, histogram in stats.callback_delay.items()},
        by_line,
        stats.callback_delay_buckets,
    )
    yield counter_family(
        "sipgate_callbacks_dropped_total",
        "Callback debts dropped, oldest first, to stay within --callbacks.max-pending.",
        [],
        [((), stats.callbacks_dropped)],
    )


def _event_metrics(stats: Statistics, last_received: float) -> Iterator[Metric]:
    yield counter_family(
        "sipgate_hangups_total",
        "Hangup events of call legs, by cause.",
        ["direction", "cause"],
        keyed(stats.hangups, product(DIRECTIONS, CAUSES)),
    )
    yield counter_family(
        "sipgate_dtmf_events_total", "DTMF events received.", [], [((), stats.dtmf_events)]
    )
    yield GaugeMetricFamily(
        "sipgate_webhook_last_received_timestamp_seconds",
        "Unix time of the last valid webhook event, 0 before the first.",
        value=last_received,
    )
    yield counter_family(
        "sipgate_events_unmatched_total",
        "Events for unknown call ids, or repeats of an event already counted.",
        ["event"],
        keyed(stats.unmatched, [(name,) for name in EVENT_NAMES]),
    )
    yield counter_family(
        "sipgate_calls_evicted_total",
        "Calls ended as expired early because --calls.max-open calls were in progress.",
        [],
        [((), stats.evicted)],
    )
    yield gauge_family(
        "sipgate_exporter_build_info",
        "Build information; always 1.",
        ["version"],
        [((__version__,), 1)],
    )


def _breakdowns(stats: Statistics, label: str, values: Iterable[str]) -> Iterator[Metric]:
    expected = [(value,) for value in values]
    for name, documentation, attribute in _BREAKDOWNS[label]:
        rows = keyed(getattr(stats, attribute), expected)
        yield counter_family(name, documentation, [label], rows)
