"""The rows at a glance: today, right now and the selected time range."""

from __future__ import annotations

from grafana_foundation_sdk.builders.stat import Panel as StatPanel

from dashboard.panels import (
    ANSWER_RATE,
    stat,
    target,
)
from dashboard.queries import (
    RANGE,
    answer_rate,
    ended,
    eq,
    in_range,
    sel,
    sum_by,
)

from .shapes import (
    CALLS_IN_RANGE,
    NAMED,
    Panels,
    bars,
    direction_stat,
    named_stat,
    series,
)


def today_row() -> Panels:
    """Return the stats for today so far."""

    def outcome_stat(title: str, description: str, outcome: str) -> StatPanel:
        expr = ended(RANGE, by="", outcomes=outcome)
        return stat(title, description, "short", [target(expr, title, instant=True)], today=True)

    return [
        direction_stat(
            "Calls today",
            "Calls started since midnight (dashboard time zone), by direction.",
            "short",
            CALLS_IN_RANGE,
            today=True,
        ),
        outcome_stat(
            "Answered by a person", "Calls ended today that a person answered.", "answered"
        ),
        outcome_stat(
            "Voicemail", "Calls ended today that only a voicemail box answered.", "voicemail"
        ),
        outcome_stat(
            "Missed", "Calls ended today where the caller hung up while ringing.", "missed"
        ),
        outcome_stat(
            "Busy / rejected",
            "Calls ended today as busy or rejected by the callee.",
            "busy|rejected",
        ),
        direction_stat(
            "Answer rate today",
            "Share of calls ended today that a person answered, by direction.",
            "percentunit",
            answer_rate(RANGE),
            today=True,
            steps=ANSWER_RATE,
        ),
    ]


def now_row() -> Panels:
    """Return what is ringing and connected right now."""

    def active_stat(title: str, description: str, state: str) -> StatPanel:
        expr = sum_by("", sel("sipgate_calls_active", state=eq(state)))
        return stat(title, description, "short", [target(expr, state, instant=True)], height=8)

    by_state = sum_by("direction, state", sel("sipgate_calls_active"))
    return [
        active_stat("Ringing now", "Calls ringing right now (not yet answered).", "ringing"),
        active_stat(
            "Connected now",
            "Calls connected right now (a person or voicemail is talking).",
            "talking",
        ),
        series(
            "Active calls",
            "Calls ringing and connected over time, by direction and state.",
            "short",
            by_state,
            "direction, state",
            width=16,
        ),
    ]


def range_row() -> Panels:
    """Return totals for the selected time range."""
    talk = in_range(sel("sipgate_call_duration_seconds_sum"), "answered_by")
    return [
        direction_stat(
            "Calls in range",
            "Calls started in the selected time range, by direction.",
            "short",
            CALLS_IN_RANGE,
            today=False,
        ),
        bars(
            "Calls ended by outcome",
            "Calls ended in the selected time range, by outcome: answered (a person), voicemail, "
            "missed (caller hung up while ringing), busy, rejected, failed, forwarded (left "
            "sipgate and never came back) and expired (no hangup event ever arrived).",
            "short",
            ended(RANGE),
            "outcome",
            10,
        ),
        direction_stat(
            "Answer rate in range",
            "Share of calls ended in the selected time range that a person answered.",
            "percentunit",
            answer_rate(RANGE),
            today=False,
            steps=ANSWER_RATE,
        ),
        named_stat(
            "Talk time in range",
            "Total talk time of calls in the selected time range, by who answered.",
            "s",
            talk,
            "answered_by",
            width=6,
            height=8,
            text_mode=NAMED,
        ),
    ]
