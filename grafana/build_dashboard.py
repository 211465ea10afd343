"""Build the sipgate.io calls dashboard (grafana/dashboards/sipgate.json) from code.

Run `python grafana/build_dashboard.py` after editing; `--check` only compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "sipgate.json"
# Grafana 12.4 writes schemaVersion 42; grafana/schema/dashboard.schema.json caps it there.
SCHEMA_VERSION = 42
DATASOURCE: JSON = {"type": "prometheus", "uid": "${datasource}"}
OUTCOMES = ("answered", "voicemail", "missed", "busy", "rejected", "failed", "forwarded", "expired")
# "Not answered by a person", as the missed-call alerts count it (sipgate.rules.yml).
UNANSWERED = "missed|busy|rejected|failed|forwarded|voicemail"
# Metric families with a line label: their selectors follow the $line variable.
LINE_FAMILIES = frozenset(
    {
        "sipgate_calls_total",
        "sipgate_calls_ended_total",
        "sipgate_calls_active",
        "sipgate_call_wait_seconds",
        "sipgate_call_duration_seconds",
    }
)
ALL = ".*"  # a matcher for every value, on purpose: the whole that a share divides by
GRID_WIDTH = 24
TODAY = "now/d"  # panel relative time "today so far"; its $__range then starts at midnight


def family(metric: str) -> str:
    """Return the metric family of a series name (a histogram's name without _bucket etc.)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if metric.endswith(suffix) and metric.removesuffix(suffix) in LINE_FAMILIES:
            return metric.removesuffix(suffix)
    return metric


def sel(metric: str, *, direction: bool = True, **matchers: str) -> str:
    """Return a selector restricted to the dashboard's job, instance, direction and line."""
    parts = ['job="$job"', 'instance=~"$instance"']
    if direction:
        parts.append('direction=~"$direction"')
    if family(metric) in LINE_FAMILIES:
        parts.append('line=~"$line"')
    parts += [f"{name}{value}" for name, value in matchers.items()]
    return f"{metric}{{{', '.join(parts)}}}"


def team_sel(metric: str, team: str = "$team") -> str:
    """Return a selector of a per-team metric, restricted to job, instance and team."""
    return sel(metric, direction=False, team=regex(team))


def eq(value: str) -> str:
    """Return an equality matcher suffix for sel()."""
    return f'="{value}"'


def regex(value: str) -> str:
    """Return a regex matcher suffix for sel()."""
    return f'=~"{value}"'


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "") -> JSON:
    """Return a Prometheus query target (refId is filled in by panel())."""
    result: JSON = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto"}
    result["range"] = not instant
    result["instant"] = instant
    if fmt:
        result["format"] = fmt
    return result


def thresholds(*steps: tuple[str, float | None]) -> JSON:
    """Return absolute thresholds; the first step starts at -Infinity."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


NEUTRAL = thresholds(("blue", None))
BAD_IF_ANY = thresholds(("green", None), ("red", 1))
ANSWER_RATE = thresholds(("red", None), ("orange", 0.6), ("green", 0.8))


@dataclass
class Panel:
    """A panel before layout: what it shows, how wide and how tall."""

    kind: str
    title: str
    description: str
    unit: str
    targets: list[JSON]
    width: int
    height: int
    options: JSON = field(default_factory=dict)
    custom: JSON = field(default_factory=dict)
    extra: JSON = field(default_factory=dict)
    defaults: JSON = field(default_factory=dict)


def _whole(unit: str) -> JSON:
    """Return decimals 0 for call counts: increase() extrapolates, and 3.08 calls reads wrong."""
    return {"decimals": 0} if unit == "short" else {}


def stat(
    title: str,
    description: str,
    unit: str,
    targets: list[JSON],
    *,
    width: int = 4,
    height: int = 4,
    today: bool = False,
    steps: JSON = NEUTRAL,
    text_mode: str = "auto",
) -> Panel:
    """Return a stat panel showing the latest value of each series."""
    extra: JSON = {"timeFrom": TODAY} if today else {}
    return Panel(
        "stat",
        title,
        description,
        unit,
        targets,
        width,
        height,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
        },
        extra=extra,
        defaults={"thresholds": steps, "color": {"mode": "thresholds"}, **_whole(unit)},
    )


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: list[JSON],
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    minimum: float | None = 0,
) -> Panel:
    """Return a time series panel."""
    custom: JSON = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stacked:
        custom.update(fillOpacity=60, stacking={"mode": "normal", "group": "A"})
    defaults: JSON = {"color": {"mode": "palette-classic"}, "thresholds": NEUTRAL}
    if minimum is not None:
        defaults["min"] = minimum
    return Panel(
        "timeseries",
        title,
        description,
        unit,
        targets,
        width,
        height,
        options={
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        custom=custom,
        defaults=defaults,
    )


def piechart(title: str, description: str, unit: str, targets: list[JSON], width: int) -> Panel:
    """Return a donut chart of the latest value of each series."""
    return Panel(
        "piechart",
        title,
        description,
        unit,
        targets,
        width,
        8,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "pieType": "donut",
            "legend": {"displayMode": "table", "placement": "right", "values": ["value"]},
            "tooltip": {"mode": "single", "sort": "none"},
        },
        defaults={"color": {"mode": "palette-classic"}, **_whole(unit)},
    )


def bargauge(title: str, description: str, unit: str, targets: list[JSON], width: int) -> Panel:
    """Return a horizontal bar gauge of the latest value of each series."""
    return Panel(
        "bargauge",
        title,
        description,
        unit,
        targets,
        width,
        8,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
        },
        defaults={
            "color": {"mode": "palette-classic"},
            "min": 0,
            "thresholds": NEUTRAL,
            **_whole(unit),
        },
    )


def heatmap(title: str, description: str, bucket_unit: str, targets: list[JSON]) -> Panel:
    """Return a heatmap of pre-bucketed histogram series (cells count calls)."""
    return Panel(
        "heatmap",
        title,
        description,
        "short",
        targets,
        8,
        8,
        options={
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5},
            "yAxis": {"axisPlacement": "left", "unit": bucket_unit},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True},
            "legend": {"show": True},
        },
    )


# --- queries -------------------------------------------------------------------------------


def increase(selector: str, window: str = "$__rate_interval") -> str:
    """Return increase() over the window."""
    return f"increase({selector}[{window}])"


def rate(selector: str) -> str:
    """Return rate() over $__rate_interval."""
    return f"rate({selector}[$__rate_interval])"


def per_minute(selector: str, by: str) -> str:
    """Return the per-minute rate of a counter, summed by the given labels."""
    return f"60 * sum by ({by}) ({rate(selector)})"


def in_range(selector: str, by: str) -> str:
    """Return the increase of a counter over the selected time range, summed by labels."""
    return f"sum by ({by}) ({increase(selector, '$__range')})"


def quantile(q: float, buckets: str, by: str = "") -> str:
    """Return histogram_quantile over a bucket selector, keeping the given labels."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(buckets)}))"


def ended(window: str, by: str = "outcome", outcomes: str = "") -> str:
    """Return calls ended in the window (optionally only some outcomes), summed by labels."""
    selector = (
        sel("sipgate_calls_ended_total", outcome=regex(outcomes))
        if outcomes
        else sel("sipgate_calls_ended_total")
    )
    prefix = f"sum by ({by}) " if by else "sum "
    return f"{prefix}({increase(selector, window)})"


def answer_rate(window: str | None) -> str:
    """Return the share of ended calls a person answered, by direction (None: as a rate)."""

    def count(selector: str) -> str:
        inner = rate(selector) if window is None else increase(selector, window)
        return f"sum by (direction) ({inner})"

    answered = count(sel("sipgate_calls_ended_total", outcome=eq("answered")))
    # "> 0" drops a direction without ended calls instead of showing NaN.
    return f"{answered} / ({count(sel('sipgate_calls_ended_total'))} > 0)"


# --- rows ----------------------------------------------------------------------------------


def today_row() -> list[Panel]:
    """Return the stats for today so far."""

    def outcome_stat(title: str, description: str, outcome: str) -> Panel:
        expr = ended("$__range", by="", outcomes=outcome)
        return stat(title, description, "short", [target(expr, title, instant=True)], today=True)

    calls = "sum by (direction) (" + increase(sel("sipgate_calls_total"), "$__range") + ")"
    return [
        stat(
            "Calls today",
            "Calls started since midnight (dashboard time zone), by direction.",
            "short",
            [target(calls, "{{direction}}", instant=True)],
            today=True,
            text_mode="value_and_name",
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
        stat(
            "Answer rate today",
            "Share of calls ended today that a person answered, by direction.",
            "percentunit",
            [target(answer_rate("$__range"), "{{direction}}", instant=True)],
            today=True,
            steps=ANSWER_RATE,
            text_mode="value_and_name",
        ),
    ]


def now_row() -> list[Panel]:
    """Return what is ringing and connected right now."""

    def active(state: str) -> str:
        return f"sum ({sel('sipgate_calls_active', state=eq(state))})"

    return [
        stat(
            "Ringing now",
            "Calls ringing right now (not yet answered).",
            "short",
            [target(active("ringing"), "ringing", instant=True)],
            height=8,
        ),
        stat(
            "Connected now",
            "Calls connected right now (a person or voicemail is talking).",
            "short",
            [target(active("talking"), "talking", instant=True)],
            height=8,
        ),
        timeseries(
            "Active calls",
            "Calls ringing and connected over time, by direction and state.",
            "short",
            [
                target(
                    f"sum by (direction, state) ({sel('sipgate_calls_active')})",
                    "{{direction}} {{state}}",
                )
            ],
            width=16,
        ),
    ]


def range_row() -> list[Panel]:
    """Return totals for the selected time range."""
    calls = "sum by (direction) (" + increase(sel("sipgate_calls_total"), "$__range") + ")"
    talk = (
        "sum by (answered_by) ("
        + increase(sel("sipgate_call_duration_seconds_sum"), "$__range")
        + ")"
    )
    return [
        stat(
            "Calls in range",
            "Calls started in the selected time range, by direction.",
            "short",
            [target(calls, "{{direction}}", instant=True)],
            height=8,
            text_mode="value_and_name",
        ),
        bargauge(
            "Calls ended by outcome",
            "Calls ended in the selected time range, by outcome: answered (a person), voicemail, "
            "missed (caller hung up while ringing), busy, rejected, failed, forwarded (left "
            "sipgate and never came back) and expired (no hangup event ever arrived).",
            "short",
            [target(ended("$__range"), "{{outcome}}", instant=True)],
            10,
        ),
        stat(
            "Answer rate in range",
            "Share of calls ended in the selected time range that a person answered.",
            "percentunit",
            [target(answer_rate("$__range"), "{{direction}}", instant=True)],
            height=8,
            steps=ANSWER_RATE,
            text_mode="value_and_name",
        ),
        stat(
            "Talk time in range",
            "Total talk time of calls in the selected time range, by who answered.",
            "s",
            [target(talk, "{{answered_by}}", instant=True)],
            width=6,
            height=8,
            text_mode="value_and_name",
        ),
    ]


def traffic_row() -> list[Panel]:
    """Return calls over time."""
    return [
        timeseries(
            "Calls started",
            "Calls started per minute, by direction.",
            "cpm",
            [target(per_minute(sel("sipgate_calls_total"), "direction"), "{{direction}}")],
            width=8,
        ),
        timeseries(
            "Calls ended by outcome",
            "Calls ended per minute, stacked by outcome.",
            "cpm",
            [target(per_minute(sel("sipgate_calls_ended_total"), "outcome"), "{{outcome}}")],
            width=8,
            stacked=True,
        ),
        timeseries(
            "Answer rate",
            "Share of ended calls that a person answered, by direction.",
            "percentunit",
            [target(answer_rate(None), "{{direction}}")],
            width=8,
        ),
    ]


def lines_row() -> list[Panel]:
    """Return calls and missed calls per line (the configured name of a sipgate number)."""
    unanswered = sel("sipgate_calls_ended_total", outcome=regex(UNANSWERED))
    known = sel("sipgate_calls_ended_total", outcome='!="expired"')
    share = f"{in_range(unanswered, 'line')} / ({in_range(known, 'line')} > 0)"
    return [
        timeseries(
            "Calls started by line",
            "Calls started per minute, by line: the configured name of the called number "
            "(incoming) or the calling number (outgoing); 'other' for numbers not configured.",
            "cpm",
            [target(per_minute(sel("sipgate_calls_total"), "line"), "{{line}}")],
            width=8,
        ),
        timeseries(
            "Missed calls by line",
            "Calls per minute not answered by a person (missed, busy, rejected, failed, "
            "forwarded away, voicemail), by line: what the missed-call alerts watch.",
            "cpm",
            [target(per_minute(unanswered, "line"), "{{line}}")],
            width=8,
        ),
        bargauge(
            "Missed-call share by line in range",
            "Share of the calls ended in the selected time range that no person answered, by "
            "line. Expired calls (no hangup ever arrived) are left out, as in the alerts.",
            "percentunit",
            [target(share, "{{line}}", instant=True)],
            8,
        ),
    ]


def teams_row() -> list[Panel]:
    """Return answered calls, talk time and outgoing calls per team."""
    answered = "sipgate_team_calls_answered_total"
    share = (
        f"{in_range(team_sel(answered), 'team')}"
        f" / on() group_left() (sum ({increase(team_sel(answered, ALL), '$__range')}) > 0)"
    )
    outgoing = team_sel("sipgate_team_outgoing_calls_total")
    return [
        bargauge(
            "Answered calls by team in range",
            "Incoming calls a person answered in the selected time range, by the team of the "
            "first person who answered; 'other' for users in no configured team.",
            "short",
            [target(in_range(team_sel(answered), "team"), "{{team}}", instant=True)],
            6,
        ),
        bargauge(
            "Talk time by team in range",
            "Talk time (first answer to last hangup) of the incoming calls each team answered "
            "in the selected time range.",
            "s",
            [
                target(
                    in_range(team_sel("sipgate_team_talk_seconds_total"), "team"),
                    "{{team}}",
                    instant=True,
                )
            ],
            6,
        ),
        bargauge(
            "Answer share by team in range",
            "Each team's share of all incoming calls a person answered in the selected time "
            "range (of all teams, whatever the team variable selects).",
            "percentunit",
            [target(share, "{{team}}", instant=True)],
            6,
        ),
        bargauge(
            "Outgoing calls by team in range",
            "Outgoing calls started in the selected time range, by the calling user's team.",
            "short",
            [target(in_range(outgoing, "team"), "{{team}}", instant=True)],
            6,
        ),
        timeseries(
            "Answered calls by team",
            "Incoming calls answered per minute, by the team of the first person who answered.",
            "cpm",
            [target(per_minute(team_sel(answered), "team"), "{{team}}")],
        ),
        timeseries(
            "Outgoing calls by team",
            "Outgoing calls started per minute, by the calling user's team.",
            "cpm",
            [target(per_minute(outgoing, "team"), "{{team}}")],
        ),
    ]


def users_row() -> list[Panel]:
    """Return the busiest users; empty unless the exporter's per-user statistics are on."""

    def top(metric: str) -> str:
        selector = sel(metric, direction=False)
        return f"topk(10, {in_range(selector, 'user')})"

    note = " Empty unless per-user statistics are enabled in the exporter's configuration file."
    return [
        bargauge(
            "Top users by answered calls in range",
            "The ten users who answered most incoming calls in the selected time range." + note,
            "short",
            [target(top("sipgate_user_calls_answered_total"), "{{user}}", instant=True)],
            8,
        ),
        bargauge(
            "Top users by talk time in range",
            "The ten users with the most talk time on answered incoming calls in the selected "
            "time range." + note,
            "s",
            [target(top("sipgate_user_talk_seconds_total"), "{{user}}", instant=True)],
            8,
        ),
        bargauge(
            "Top users by outgoing calls in range",
            "The ten users who started most outgoing calls in the selected time range." + note,
            "short",
            [target(top("sipgate_user_outgoing_calls_total"), "{{user}}", instant=True)],
            8,
        ),
    ]


def wait_row() -> list[Panel]:
    """Return how long callers wait before someone answers or they give up."""
    metric = "sipgate_call_wait_seconds"
    buckets = sel(metric + "_bucket")
    return [
        timeseries(
            "Wait time",
            "Time from first ring to first answer or hangup: median and 90th percentile.",
            "s",
            [
                target(quantile(0.5, buckets), "median"),
                target(quantile(0.9, buckets), "90th percentile"),
            ],
            width=8,
        ),
        timeseries(
            "Wait time by outcome (90th percentile)",
            "90th percentile of the wait, by how the call ended.",
            "s",
            [target(quantile(0.9, buckets, "outcome"), "{{outcome}}")],
            width=8,
        ),
        heatmap(
            "Wait time distribution",
            "Calls per wait-time bucket over time; brighter cells hold more calls.",
            "s",
            [target(f"sum by (le) ({increase(buckets)})", "{{le}}", fmt="heatmap")],
        ),
    ]


def talk_row() -> list[Panel]:
    """Return how long answered calls last."""
    metric = "sipgate_call_duration_seconds"
    buckets = sel(metric + "_bucket")
    average = (
        f"sum by (answered_by) ({rate(sel(metric + '_sum'))})"
        f" / sum by (answered_by) ({rate(sel(metric + '_count'))})"
    )
    return [
        timeseries(
            "Talk time",
            "Talk time of answered calls by who answered: median and 90th percentile.",
            "s",
            [
                target(quantile(0.5, buckets, "answered_by"), "median {{answered_by}}"),
                target(quantile(0.9, buckets, "answered_by"), "p90 {{answered_by}}"),
            ],
        ),
        timeseries(
            "Average talk time",
            "Mean talk time of answered calls, by who answered.",
            "s",
            [target(average, "{{answered_by}}")],
        ),
    ]


def hangup_row() -> list[Panel]:
    """Return hangup causes and DTMF."""
    hangups = sel("sipgate_hangups_total")
    in_range = f"sum by (cause) ({increase(hangups, '$__range')})"
    dtmf = f"60 * sum ({rate(sel('sipgate_dtmf_events_total', direction=False))})"
    return [
        timeseries(
            "Hangups by cause",
            "Hangup events per minute, by the cause sipgate reported.",
            "cpm",
            [target(per_minute(hangups, "cause"), "{{cause}}")],
            stacked=True,
        ),
        piechart(
            "Hangup causes in range",
            "Share of hangup causes in the selected time range.",
            "short",
            [target(in_range, "{{cause}}", instant=True)],
            6,
        ),
        timeseries(
            "DTMF key presses",
            "DTMF events received per minute (keys pressed in IVR menus).",
            "cpm",
            [target(dtmf, "DTMF")],
            width=6,
        ),
    ]


def health_row() -> list[Panel]:
    """Return the exporter's own health."""

    def own(metric: str, **matchers: str) -> str:
        return sel(metric, direction=False, **matchers)

    webhook_buckets = "sipgate_webhook_request_duration_seconds_bucket"
    last_event = f"time() - max ({own('sipgate_webhook_last_received_timestamp_seconds')} > 0)"
    return [
        timeseries(
            "Webhook requests",
            "Webhook requests per second received from sipgate.io, by event and HTTP status.",
            "reqps",
            [
                target(
                    f"sum by (event, code) ({rate(own('sipgate_webhook_requests_total'))})",
                    "{{event}} {{code}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Rejected webhook requests",
            "Webhook requests the exporter refused, by reason. Should stay at zero.",
            "reqps",
            [
                target(
                    "sum by (reason) ("
                    + rate(own("sipgate_webhook_rejected_requests_total"))
                    + ")",
                    "{{reason}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Webhook handling time",
            "Time the exporter takes to handle one webhook request: median and 99th percentile.",
            "s",
            [
                target(quantile(0.5, own(webhook_buckets)), "median"),
                target(quantile(0.99, own(webhook_buckets)), "99th percentile"),
            ],
            width=8,
        ),
        stat(
            "Last webhook event",
            "Time since the last webhook event reached the exporter. Empty until the first "
            "event; long gaps during business hours mean sipgate.io cannot reach the exporter.",
            "s",
            [target(last_event, "age", instant=True)],
            height=8,
            steps=thresholds(("green", None), ("orange", 3600), ("red", 86400)),
        ),
        timeseries(
            "Unmatched events",
            "Events per second that matched no known call (e.g. a hangup for a call the "
            "exporter never saw start), by event.",
            "eps",
            [
                target(
                    f"sum by (event) ({rate(own('sipgate_events_unmatched_total'))})",
                    "{{event}}",
                )
            ],
            width=8,
        ),
        stat(
            "Exporter version",
            "Version of each running exporter (sipgate_exporter_build_info).",
            "none",
            [
                target(
                    f"max by (version) ({own('sipgate_exporter_build_info')})",
                    "{{version}}",
                    instant=True,
                )
            ],
            height=8,
            text_mode="name",
        ),
        timeseries(
            "Exporter memory",
            "Resident memory of the exporter process.",
            "bytes",
            [
                target(
                    f"max by (instance) ({own('process_resident_memory_bytes')})",
                    "{{instance}}",
                )
            ],
            width=4,
        ),
        timeseries(
            "Exporter CPU",
            "CPU time the exporter process uses per second of wall time.",
            "percentunit",
            [
                target(
                    f"sum by (instance) ({rate(own('process_cpu_seconds_total'))})",
                    "{{instance}}",
                )
            ],
            width=4,
        ),
        *config_panels(),
    ]


def config_panels() -> list[Panel]:
    """Return the health of the exporter's configuration file and its label caps."""

    def own(metric: str) -> str:
        return sel(metric, direction=False)

    return [
        timeseries(
            "Configuration reloads",
            "Reloads of the exporter's configuration file (SIGHUP or POST /-/reload), by "
            "outcome. A failed reload keeps the previous configuration.",
            "short",
            [
                target(
                    f"sum by (outcome) ({increase(own('sipgate_config_reloads_total'))})",
                    "{{outcome}}",
                )
            ],
            width=8,
        ),
        stat(
            "Configuration loaded",
            "Whether the last (re)load of the configuration file succeeded on every instance "
            "(1: yes, 0: the exporter runs on an older configuration; see its log).",
            "bool_yes_no",
            [
                target(
                    f"min ({own('sipgate_config_last_reload_successful')})",
                    "loaded",
                    instant=True,
                )
            ],
            steps=thresholds(("red", None), ("green", 1)),
            height=8,
        ),
        timeseries(
            "Label values folded into other",
            "Lines, teams or users counted as 'other' per minute because their label reached "
            "its configured cap of distinct values. Should stay at zero; raise the cap or "
            "shorten the configuration.",
            "cpm",
            [
                target(
                    per_minute(own("sipgate_label_values_overflow_total"), "label"),
                    "{{label}}",
                )
            ],
        ),
    ]


ROWS: tuple[tuple[str, Callable[[], list[Panel]]], ...] = (
    ("Today", today_row),
    ("Right now", now_row),
    ("Selected time range", range_row),
    ("Calls over time", traffic_row),
    ("Lines", lines_row),
    ("Teams", teams_row),
    ("Users", users_row),
    ("Wait time", wait_row),
    ("Talk time", talk_row),
    ("Hangups", hangup_row),
    ("Exporter health", health_row),
)


# --- assembly ------------------------------------------------------------------------------


class Layout:
    """Place panels left to right, wrapping at the grid width, and number them."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.line_height = 0
        self.next_id = 1

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> JSON:
        """Return a row panel starting a new line."""
        self._newline()
        grid = {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self.y}
        self.y += 1
        return {
            "type": "row",
            "id": self._take_id(),
            "title": title,
            "collapsed": False,
            "gridPos": grid,
            "panels": [],
        }

    def _newline(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def place(self, panel: Panel) -> JSON:
        """Return the panel as dashboard JSON at the next free place."""
        if self.x + panel.width > GRID_WIDTH:
            self._newline()
        grid = {"h": panel.height, "w": panel.width, "x": self.x, "y": self.y}
        self.x += panel.width
        self.line_height = max(self.line_height, panel.height)
        targets = [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(panel.targets)]
        defaults: JSON = {**panel.defaults, "unit": panel.unit}
        if panel.custom:
            defaults["custom"] = panel.custom
        return {
            "type": panel.kind,
            "id": self._take_id(),
            "title": panel.title,
            "description": panel.description,
            "datasource": DATASOURCE,
            "gridPos": grid,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": panel.options,
            "targets": targets,
            **panel.extra,
        }


def variables() -> list[JSON]:
    """Return the template variables: datasource, job, instance, direction, line, team."""
    all_option = {"text": "All", "value": "$__all"}

    def values_of(name: str, label: str, metric: str) -> JSON:
        """Return a multi-value query variable listing a label's values, All by default."""
        return {
            "type": "query",
            "name": label,
            "label": name,
            "datasource": DATASOURCE,
            "query": f'label_values({metric}{{job="$job", instance=~"$instance"}}, {label})',
            "current": all_option,
            "refresh": 2,
            "sort": 1,
            "includeAll": True,
            "allValue": ALL,
            "multi": True,
        }

    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {"text": "Prometheus", "value": "prometheus"},
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        {
            "type": "query",
            "name": "job",
            "label": "Job",
            "datasource": DATASOURCE,
            "query": "label_values(sipgate_exporter_build_info, job)",
            "current": {"text": "sipgate", "value": "sipgate"},
            "refresh": 2,
            "sort": 1,
            "includeAll": False,
            "multi": False,
        },
        {
            "type": "query",
            "name": "instance",
            "label": "Instance",
            "datasource": DATASOURCE,
            "query": 'label_values(sipgate_exporter_build_info{job="$job"}, instance)',
            "current": all_option,
            "refresh": 2,
            "sort": 1,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
        },
        {
            "type": "custom",
            "name": "direction",
            "label": "Direction",
            "query": "in,out",
            "current": all_option,
            "options": [
                {**all_option, "selected": True},
                {"text": "in", "value": "in", "selected": False},
                {"text": "out", "value": "out", "selected": False},
            ],
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
        },
        values_of("Line", "line", "sipgate_calls_total"),
        values_of("Team", "team", "sipgate_team_calls_answered_total"),
    ]


def build() -> JSON:
    """Return the whole dashboard as JSON-ready data."""
    layout = Layout()
    panels: list[JSON] = []
    for title, make in ROWS:
        panels.append(layout.row(title))
        panels += [layout.place(p) for p in make()]
    return {
        "uid": "sipgate-calls",
        "title": "sipgate.io calls",
        "description": "Calls, outcomes, wait and talk time from the sipgate.io exporter.",
        "tags": ["sipgate", "telephony"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables()},
        "links": [],
        "panels": panels,
    }


def render() -> str:
    """Return the dashboard as the exact text committed in OUTPUT."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard, or with --check report whether the committed file is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only, exit 1 on drift")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run python grafana/build_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
