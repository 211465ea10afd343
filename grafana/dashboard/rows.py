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
    Column,
    SeriesLayout,
    StatLayout,
    Steps,
    bargauge,
    fixed_colors,
    heatmap,
    piechart,
    stat,
    table,
    target,
    timeseries,
)
from .queries import (
    ALL,
    RANGE,
    SERVICE_LEVEL_TARGET,
    UNANSWERED,
    answer_rate,
    calls_in_clock_hour,
    ended,
    eq,
    in_range,
    incoming,
    increase,
    mean_in_range,
    own,
    per_minute,
    quantile,
    quantile_in_range,
    rate,
    regex,
    sel,
    share_in_range,
    share_per_interval,
    sum_by,
    team_sel,
)

Panels = list[Builder[Panel]]
CALLS_IN_RANGE = in_range(sel("sipgate_calls_total"), "direction")
NAMED = BigValueTextMode.VALUE_AND_NAME

# The service level counters of the exporter: incoming calls only.
OFFERED = incoming("sipgate_calls_offered_total")
IN_TARGET = incoming("sipgate_calls_answered_in_target_total")
ABANDONED = incoming("sipgate_calls_abandoned_total")
SHORT_ABANDONED = incoming("sipgate_calls_short_abandoned_total")
UNNAMED = incoming("sipgate_calls_answered_unnamed_total")
RINGING_SINCE = incoming("sipgate_calls_ringing_since_timestamp_seconds")
WAITING_NOW = incoming("sipgate_calls_active", state=eq("ringing"))
PENDING = own("sipgate_callbacks_pending")
WAIT = "sipgate_call_wait_seconds"
ANSWERED = {"outcome": eq("answered")}
# Contact-centre rules of thumb: under 5 % abandoned; answered within the default 20 s target.
ABANDON_RATE: Steps = (("green", None), ("orange", 0.05), ("red", 0.1))
WAITING: Steps = (("green", None), ("orange", 20), ("red", 60))
# SipgateCallbacksPiling's default threshold.
CALLBACKS_PILING: Steps = (("green", None), ("orange", 20))
IN_RANGE_NOTE = " Over the selected time range; several exporters add up."


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


def callbacks_row() -> Panels:
    """Return short abandons, unnamed answers and the callbacks owed to missed callers."""
    delay = own("sipgate_callback_delay_seconds_bucket")
    dropped = own("sipgate_callbacks_dropped_total")
    return [
        bars(
            "Short abandons by line in range",
            "Incoming calls where the caller hung up within the short-abandon time "
            "(--calls.short-abandon, 5 s): not offered, so in neither the service level nor "
            "the abandon rate. They are owed a callback all the same.",
            "short",
            in_range(SHORT_ABANDONED, "line"),
            "line",
            6,
        ),
        bars(
            "Unnamed answers by line in range",
            "Incoming calls answered only by a party sipgate named no user for: a queue, an "
            "announcement, a *9 pickup or a team member's external phone. They count as "
            "answered by a person; many of them on a queue line make its service level look "
            "better than the callers felt it.",
            "short",
            in_range(UNNAMED, "line"),
            "line",
            6,
        ),
        bars(
            "Callbacks by result in range",
            "Debts to missed callers closed in the selected time range: called_back (a team "
            "member's outgoing call to the number was answered), called_again (the caller "
            "called again and a person answered), expired (neither within "
            "--callbacks.expire-after, 3 days).",
            "short",
            in_range(own("sipgate_callbacks_total"), "result"),
            "result",
            6,
        ),
        stat(
            "Callback delay in range",
            "Time from the end of a caller's first missed call to the answer that settled the "
            "debt, for debts settled in the selected time range: median and 90th percentile. "
            "Empty when none was settled.",
            "s",
            [
                target(quantile_in_range(0.5, delay), "median", instant=True),
                target(quantile_in_range(0.9, delay), "90th percentile", instant=True),
            ],
            width=6,
            height=8,
            text_mode=NAMED,
        ),
        series(
            "Callbacks pending by line",
            "Missed callers owed a callback, by the line they called.",
            "short",
            sum_by("line", PENDING),
            "line",
        ),
        timeseries(
            "Callback debts dropped",
            "Debts dropped per minute, oldest first, because --callbacks.max-pending numbers "
            "were owed a callback. Should stay at zero; raise the limit.",
            "cpm",
            [target(per_minute(dropped, ""), "dropped")],
        ),
    ]


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
            6,
        ),
        rate_panel(
            "State write failures",
            "Writes to the state files that failed per second, by part. A failing journal "
            "refuses webhooks with 500 until it can be written again (is the disk full?); a "
            "failing snapshot is tried again later. Should stay at zero.",
            "ops",
            "sipgate_state_write_errors_total",
            "part",
            6,
        ),
        rate_panel(
            "Connections dropped",
            "Connections per second refused when accepted (source, per_client) or closed before "
            "their request had arrived (request_timeout, read_timeout). Bursts mean a client "
            "holds connections open or trickles its requests.",
            "ops",
            "sipgate_web_connections_dropped_total",
            "reason",
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
    ("Service level", service_level_row),
    ("Abandons and callbacks", callbacks_row),
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
