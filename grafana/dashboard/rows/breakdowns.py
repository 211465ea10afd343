"""The rows by line, team and user."""

from __future__ import annotations

from grafana_foundation_sdk.builders.bargauge import Panel as BarGaugePanel

from dashboard.queries import (
    ALL,
    UNANSWERED,
    in_range,
    own,
    regex,
    sel,
    team_sel,
)

from .shapes import (
    Panels,
    bars,
    per_minute_panel,
)


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
