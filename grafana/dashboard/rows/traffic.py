"""Calls over time and their hangups."""

from __future__ import annotations

from dashboard.panels import (
    piechart,
    target,
    timeseries,
)
from dashboard.queries import (
    answer_rate,
    in_range,
    own,
    per_minute,
    sel,
)

from .shapes import (
    Panels,
    legend,
    per_minute_panel,
    series,
)


def traffic_row() -> Panels:
    """Return calls over time."""
    return [
        per_minute_panel(
            "Calls started",
            "Calls started per minute, by direction.",
            sel("sipgate_calls_total"),
            "direction",
            width=8,
        ),
        per_minute_panel(
            "Calls ended by outcome",
            "Calls ended per minute, stacked by outcome.",
            sel("sipgate_calls_ended_total"),
            "outcome",
            width=8,
            stacked=True,
        ),
        series(
            "Answer rate",
            "Share of ended calls that a person answered, by direction.",
            "percentunit",
            answer_rate(None),
            "direction",
            width=8,
        ),
    ]


def hangup_row() -> Panels:
    """Return hangup causes and DTMF."""
    hangups = sel("sipgate_hangups_total")
    return [
        per_minute_panel(
            "Hangups by cause",
            "Hangup events per minute, by the cause sipgate reported.",
            hangups,
            "cause",
            stacked=True,
        ),
        piechart(
            "Hangup causes in range",
            "Share of hangup causes in the selected time range.",
            "short",
            [target(in_range(hangups, "cause"), legend("cause"), instant=True)],
            6,
        ),
        timeseries(
            "DTMF key presses",
            "DTMF events received per minute (keys pressed in IVR menus).",
            "cpm",
            [target(per_minute(own("sipgate_dtmf_events_total"), ""), "DTMF")],
            width=6,
        ),
    ]
