"""The service level row: the share answered in target, by line and hour."""

from __future__ import annotations

from grafana_foundation_sdk.builders.bargauge import Panel as BarGaugePanel
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboard.panels import (
    Column,
    bargauge,
    fixed_colors,
    stat,
    table,
    target,
    timeseries,
)
from dashboard.queries import (
    SERVICE_LEVEL_TARGET,
    calls_in_clock_hour,
    in_range,
    mean_in_range,
    share_in_range,
    share_per_interval,
    sum_by,
)

from .shapes import (
    ABANDON_RATE,
    ABANDONED,
    ANSWERED,
    CALLBACKS_PILING,
    IN_RANGE_NOTE,
    IN_TARGET,
    OFFERED,
    PENDING,
    RINGING_SINCE,
    WAIT,
    WAITING,
    WAITING_NOW,
    Panels,
    legend,
    series,
)


def service_level_row() -> Panels:
    """Return the call-centre figures: service level, abandons, waits, callbacks, by line."""
    return [*service_level_stats(), *service_level_series(), lines_table(), busy_hours()]


def service_level_stats() -> Panels:
    """Return the headline figures of the selected range and of right now."""
    level = share_in_range(IN_TARGET, OFFERED)
    target_met = [
        target(f"{level} >= {SERVICE_LEVEL_TARGET}", "Service level", instant=True),
        target(f"{level} < {SERVICE_LEVEL_TARGET}", "Service level", instant=True),
    ]
    oldest = f"min ({RINGING_SINCE} > 0)"  # 0: nobody rings on that line
    return [
        fixed_colors(
            stat(
                "Service level",
                "Share of offered incoming calls a person answered within the exporter's target "
                "wait (--calls.service-level-target, 20 s unless set per line). Offered: every "
                "ended incoming call but expired ones and short abandons. Green at or above the "
                "dashboard's service level target, red below it (query A holds the value when "
                "the target is met, query B when it is not)." + IN_RANGE_NOTE,
                "percentunit",
                target_met,
            ),
            {"A": "green", "B": "red"},
        ),
        stat(
            "Abandon rate",
            "Share of offered incoming calls where the caller hung up while ringing, after at "
            "least the short-abandon time (--calls.short-abandon, 5 s). Orange from 5 %, red "
            "from 10 %." + IN_RANGE_NOTE,
            "percentunit",
            [target(share_in_range(ABANDONED, OFFERED), "Abandon rate", instant=True)],
            steps=ABANDON_RATE,
        ),
        stat(
            "Average speed of answer",
            "Mean wait of the incoming calls a person answered, from the first ring to the "
            "first answer. Orange from 20 s, red from 60 s." + IN_RANGE_NOTE,
            "s",
            [target(mean_in_range(WAIT, **ANSWERED), "Speed of answer", instant=True)],
            steps=WAITING,
        ),
        stat(
            "Longest wait now",
            "How long the caller waiting longest has been ringing, right now; 0 when nobody "
            "waits. Orange from 20 s, red from 60 s.",
            "s",
            [target(f"(time() - {oldest}) or vector(0)", "Longest wait", instant=True)],
            steps=WAITING,
        ),
        stat(
            "Calls waiting now",
            "Incoming calls ringing right now, not yet answered by anyone.",
            "short",
            [target(sum_by("", WAITING_NOW), "Waiting", instant=True)],
        ),
        stat(
            "Callbacks pending",
            "Callers whose call nobody answered (missed, voicemail, busy, rejected, failed, "
            "forwarded; short abandons too) and who were neither called back nor reached "
            "anyone by calling again yet. Anonymous callers are never counted. Orange from "
            "20, where the SipgateCallbacksPiling alert looks.",
            "short",
            [target(sum_by("", PENDING), "Pending", instant=True)],
            steps=CALLBACKS_PILING,
        ),
    ]


def service_level_series() -> Panels:
    """Return the service level and the abandon rate over time, by line."""
    level = target(share_per_interval(IN_TARGET, OFFERED, "line"), legend("line"))
    goal = target(f"vector({SERVICE_LEVEL_TARGET})", "target")
    return [
        timeseries(
            "Service level by line",
            "Share of the incoming calls offered in each interval that a person answered "
            "within the exporter's target wait, by line, and the dashboard's service level "
            "target. Intervals without offered calls are gaps.",
            "percentunit",
            [level, goal],
        ),
        series(
            "Abandon rate by line",
            "Share of the incoming calls offered in each interval where the caller hung up "
            "while ringing, after at least the short-abandon time, by line.",
            "percentunit",
            share_per_interval(ABANDONED, OFFERED, "line"),
            "line",
        ),
    ]


def lines_table() -> Builder[Panel]:
    """Return one row per line: offered, answered in target, abandoned, speed, callbacks."""
    queries = [
        in_range(OFFERED, "line"),
        in_range(IN_TARGET, "line"),
        share_in_range(IN_TARGET, OFFERED, "line"),
        in_range(ABANDONED, "line"),
        mean_in_range(WAIT, "line", **ANSWERED),
        sum_by("line", PENDING),
    ]
    columns = (
        Column("A", "Offered"),
        Column("B", "Answered in target"),
        Column("C", "Service level", "percentunit"),
        Column("D", "Abandoned"),
        Column("E", "Average speed of answer", "s", 1),
        Column("F", "Callbacks pending"),
    )
    return table(
        "Service level by line in range",
        "Per line over the selected time range: incoming calls offered, answered by a person "
        "within the target wait, the service level, calls abandoned after the short-abandon "
        "time, the mean wait of answered calls; and the callers owed a callback now.",
        [target(expr, instant=True, fmt=PromQueryFormat.TABLE) for expr in queries],
        columns,
        (14, 8),
        "line",
    )


def busy_hours() -> BarGaugePanel:
    """Return incoming calls offered per hour of the day over the last seven days."""
    queries = [
        target(calls_in_clock_hour(OFFERED, hour), f"{hour:02d}", instant=True)
        for hour in range(24)
    ]
    panel = bargauge(
        "Busy hours (last 7 days, UTC)",
        "Incoming calls offered in each hour of the day, added up over the last seven days: "
        "bar 09 counts the calls that ended between 09:00 and 10:00. Hours are UTC, because "
        "Prometheus knows no time zones (Germany is UTC+1, UTC+2 in summer).",
        "short",
        queries,
        10,
        vertical=True,
    )
    return panel.time_from("7d")
