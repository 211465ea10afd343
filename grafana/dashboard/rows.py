"""The rows of the dashboard: what each shows, in the order they stand."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Unpack

from grafana_foundation_sdk.builders.bargauge import Panel as BarGaugePanel
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.common import BigValueTextMode
from grafana_foundation_sdk.models.dashboard import Panel
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from .panels import (
    ANSWER_RATE,
    NEUTRAL,
    SeriesLayout,
    StatLayout,
    Steps,
    bargauge,
    heatmap,
    piechart,
    stat,
    target,
    timeseries,
)
from .queries import (
    ALL,
    RANGE,
    UNANSWERED,
    answer_rate,
    ended,
    eq,
    in_range,
    increase,
    own,
    per_minute,
    quantile,
    rate,
    regex,
    sel,
    sum_by,
    team_sel,
)

Panels = list[Builder[Panel]]
CALLS_IN_RANGE = in_range(sel("sipgate_calls_total"), "direction")
NAMED = BigValueTextMode.VALUE_AND_NAME


def legend(by: str) -> str:
    """Return the legend naming a series by the given labels, e.g. "{{event}} {{code}}"."""
    return " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))


# --- panel shapes that several rows share ------------------------------------------------------


def named_stat(
    title: str, description: str, unit: str, expr: str, by: str, **layout: Unpack[StatLayout]
) -> StatPanel:
    """Return a stat of an instant query, its values named by the labels in by."""
    return stat(title, description, unit, [target(expr, legend(by), instant=True)], **layout)


def direction_stat(
    title: str, description: str, unit: str, expr: str, *, today: bool, steps: Steps = NEUTRAL
) -> StatPanel:
    """Return a named stat by direction: 4 high for today so far, else 8 for the range."""
    height = 4 if today else 8
    return named_stat(
        title,
        description,
        unit,
        expr,
        "direction",
        height=height,
        today=today,
        steps=steps,
        text_mode=NAMED,
    )


def bars(title: str, description: str, unit: str, expr: str, by: str, width: int) -> BarGaugePanel:
    """Return bars of an instant query over the selected range, one per value of a label."""
    return bargauge(title, description, unit, [target(expr, legend(by), instant=True)], width)


def series(
    title: str, description: str, unit: str, expr: str, by: str, **layout: Unpack[SeriesLayout]
) -> TimeseriesPanel:
    """Return a time series panel of expr, a series per value of the labels in by."""
    return timeseries(title, description, unit, [target(expr, legend(by))], **layout)


def per_minute_panel(
    title: str, description: str, counter: str, by: str, **layout: Unpack[SeriesLayout]
) -> TimeseriesPanel:
    """Return a counter selector's increase per minute, summed by labels."""
    return series(title, description, "cpm", per_minute(counter, by), by, **layout)


def rate_panel(
    title: str, description: str, unit: str, metric: str, by: str, width: int
) -> TimeseriesPanel:
    """Return the per-second rate of one of the exporter's own counters, summed by labels."""
    return series(title, description, unit, sum_by(by, rate(own(metric))), by, width=width)


def quantiles_panel(
    title: str,
    description: str,
    buckets: str,
    legends: Mapping[float, str],
    *,
    by: str = "",
    width: int = 12,
) -> TimeseriesPanel:
    """Return quantiles of a histogram in seconds; legends maps each quantile to its legend."""
    queries = [target(quantile(q, buckets, by), text) for q, text in legends.items()]
    return timeseries(title, description, "s", queries, width=width)


# --- the rows ----------------------------------------------------------------------------------


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


def lines_row() -> Panels:
    """Return calls and missed calls per line (the configured name of a sipgate number)."""
    unanswered = sel("sipgate_calls_ended_total", outcome=regex(UNANSWERED))
    known = sel("sipgate_calls_ended_total", outcome='!="expired"')
    share = f"{in_range(unanswered, 'line')} / ({in_range(known, 'line')} > 0)"
    return [
        per_minute_panel(
            "Calls started by line",
            "Calls started per minute, by line: the configured name of the called number "
            "(incoming) or the calling number (outgoing); 'other' for numbers not configured.",
            sel("sipgate_calls_total"),
            "line",
            width=8,
        ),
        per_minute_panel(
            "Missed calls by line",
            "Calls per minute not answered by a person (missed, busy, rejected, failed, "
            "forwarded away, voicemail), by line: what the missed-call alerts watch.",
            unanswered,
            "line",
            width=8,
        ),
        bars(
            "Missed-call share by line in range",
            "Share of the calls ended in the selected time range that no person answered, by "
            "line. Expired calls (no hangup ever arrived) are left out, as in the alerts.",
            "percentunit",
            share,
            "line",
            8,
        ),
    ]


def teams_row() -> Panels:
    """Return answered calls, talk time and outgoing calls per team."""
    answered = team_sel("sipgate_team_calls_answered_total")
    # The share is of all answered calls (team=~".*"), whatever the team variable selects.
    everyone = team_sel("sipgate_team_calls_answered_total", ALL)
    share = f"{in_range(answered, 'team')} / on() group_left() ({in_range(everyone, '')} > 0)"
    outgoing = team_sel("sipgate_team_outgoing_calls_total")
    talk = team_sel("sipgate_team_talk_seconds_total")
    return [
        bars(
            "Answered calls by team in range",
            "Incoming calls a person answered in the selected time range, by the team of the "
            "first person who answered; 'other' for users in no configured team.",
            "short",
            in_range(answered, "team"),
            "team",
            6,
        ),
        bars(
            "Talk time by team in range",
            "Talk time (first answer to last hangup) of the incoming calls each team answered "
            "in the selected time range.",
            "s",
            in_range(talk, "team"),
            "team",
            6,
        ),
        bars(
            "Answer share by team in range",
            "Each team's share of all incoming calls a person answered in the selected time "
            "range (of all teams, whatever the team variable selects).",
            "percentunit",
            share,
            "team",
            6,
        ),
        bars(
            "Outgoing calls by team in range",
            "Outgoing calls started in the selected time range, by the calling user's team.",
            "short",
            in_range(outgoing, "team"),
            "team",
            6,
        ),
        per_minute_panel(
            "Answered calls by team",
            "Incoming calls answered per minute, by the team of the first person who answered.",
            answered,
            "team",
        ),
        per_minute_panel(
            "Outgoing calls by team",
            "Outgoing calls started per minute, by the calling user's team.",
            outgoing,
            "team",
        ),
    ]


def users_row() -> Panels:
    """Return the busiest users; empty unless the exporter's per-user statistics are on."""

    def top(title: str, description: str, unit: str, metric: str) -> BarGaugePanel:
        note = " Empty unless per-user statistics are enabled in the exporter's configuration file."
        expr = f"topk(10, {in_range(own(metric), 'user')})"
        return bars(title, description + note, unit, expr, "user", 8)

    return [
        top(
            "Top users by answered calls in range",
            "The ten users who answered most incoming calls in the selected time range.",
            "short",
            "sipgate_user_calls_answered_total",
        ),
        top(
            "Top users by talk time in range",
            "The ten users with the most talk time on answered incoming calls in the selected "
            "time range.",
            "s",
            "sipgate_user_talk_seconds_total",
        ),
        top(
            "Top users by outgoing calls in range",
            "The ten users who started most outgoing calls in the selected time range.",
            "short",
            "sipgate_user_outgoing_calls_total",
        ),
    ]


def wait_row() -> Panels:
    """Return how long callers wait before someone answers or they give up."""
    buckets = sel("sipgate_call_wait_seconds_bucket")
    return [
        quantiles_panel(
            "Wait time",
            "Time from first ring to first answer or hangup: median and 90th percentile.",
            buckets,
            {0.5: "median", 0.9: "90th percentile"},
            width=8,
        ),
        quantiles_panel(
            "Wait time by outcome (90th percentile)",
            "90th percentile of the wait, by how the call ended.",
            buckets,
            {0.9: legend("outcome")},
            by="outcome",
            width=8,
        ),
        heatmap(
            "Wait time distribution",
            "Calls per wait-time bucket over time; brighter cells hold more calls.",
            "s",
            [target(sum_by("le", increase(buckets)), legend("le"), fmt=PromQueryFormat.HEATMAP)],
        ),
    ]


def talk_row() -> Panels:
    """Return how long answered calls last."""
    metric, by = "sipgate_call_duration_seconds", "answered_by"
    average = (
        f"{sum_by(by, rate(sel(metric + '_sum')))} / {sum_by(by, rate(sel(metric + '_count')))}"
    )
    return [
        quantiles_panel(
            "Talk time",
            "Talk time of answered calls by who answered: median and 90th percentile.",
            sel(metric + "_bucket"),
            {0.5: f"median {legend(by)}", 0.9: f"p90 {legend(by)}"},
            by=by,
        ),
        series(
            "Average talk time",
            "Mean talk time of answered calls, by who answered.",
            "s",
            average,
            by,
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


def health_row() -> Panels:
    """Return the exporter's own health: webhooks, the process, the configuration."""
    return [*webhook_panels(), *process_panels(), *config_panels()]


def webhook_panels() -> Panels:
    """Return how the webhook is used and answered, and when it was last reached."""
    handling = own("sipgate_webhook_request_duration_seconds_bucket")
    last_event = f"time() - max ({own('sipgate_webhook_last_received_timestamp_seconds')} > 0)"
    return [
        rate_panel(
            "Webhook requests",
            "Webhook requests per second received from sipgate.io, by event and HTTP status.",
            "reqps",
            "sipgate_webhook_requests_total",
            "event, code",
            8,
        ),
        rate_panel(
            "Rejected webhook requests",
            "Webhook requests the exporter refused, by reason. Should stay at zero.",
            "reqps",
            "sipgate_webhook_rejected_requests_total",
            "reason",
            8,
        ),
        quantiles_panel(
            "Webhook handling time",
            "Time the exporter takes to handle one webhook request: median and 99th percentile.",
            handling,
            {0.5: "median", 0.99: "99th percentile"},
            width=8,
        ),
        stat(
            "Last webhook event",
            "Time since the last webhook event reached the exporter. Empty until the first "
            "event; long gaps during business hours mean sipgate.io cannot reach the exporter.",
            "s",
            [target(last_event, "age", instant=True)],
            height=8,
            steps=(("green", None), ("orange", 3600), ("red", 86400)),
        ),
        rate_panel(
            "Unmatched events",
            "Events per second that matched no known call (e.g. a hangup for a call the "
            "exporter never saw start), by event.",
            "eps",
            "sipgate_events_unmatched_total",
            "event",
            8,
        ),
    ]


def process_panels() -> Panels:
    """Return the running exporters' versions, memory and CPU."""
    versions = f"max by (version) ({own('sipgate_exporter_build_info')})"
    memory = f"max by (instance) ({own('process_resident_memory_bytes')})"
    return [
        named_stat(
            "Exporter version",
            "Version of each running exporter (sipgate_exporter_build_info).",
            "none",
            versions,
            "version",
            height=8,
            text_mode=BigValueTextMode.NAME,
        ),
        series(
            "Exporter memory",
            "Resident memory of the exporter process.",
            "bytes",
            memory,
            "instance",
            width=4,
        ),
        rate_panel(
            "Exporter CPU",
            "CPU time the exporter process uses per second of wall time.",
            "percentunit",
            "process_cpu_seconds_total",
            "instance",
            4,
        ),
    ]


def config_panels() -> Panels:
    """Return the health of the exporter's configuration file and its label caps."""
    reloads = sum_by("outcome", increase(own("sipgate_config_reloads_total")))
    loaded = f"min ({own('sipgate_config_last_reload_successful')})"
    return [
        series(
            "Configuration reloads",
            "Reloads of the exporter's configuration file (SIGHUP or POST /-/reload), by "
            "outcome. A failed reload keeps the previous configuration.",
            "short",
            reloads,
            "outcome",
            width=8,
        ),
        stat(
            "Configuration loaded",
            "Whether the last (re)load of the configuration file succeeded on every instance "
            "(1: yes, 0: the exporter runs on an older configuration; see its log).",
            "bool_yes_no",
            [target(loaded, "loaded", instant=True)],
            steps=(("red", None), ("green", 1)),
            height=8,
        ),
        per_minute_panel(
            "Label values folded into other",
            "Lines, teams or users counted as 'other' per minute because their label reached "
            "its configured cap of distinct values. Should stay at zero; raise the cap or "
            "shorten the configuration.",
            own("sipgate_label_values_overflow_total"),
            "label",
        ),
    ]


ROWS: tuple[tuple[str, Callable[[], Panels]], ...] = (
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
