"""PromQL of the dashboard: selectors that follow the variables, and the usual aggregations."""

from __future__ import annotations

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
        "sipgate_calls_offered_total",
        "sipgate_calls_answered_in_target_total",
        "sipgate_calls_abandoned_total",
        "sipgate_calls_short_abandoned_total",
        "sipgate_calls_answered_unnamed_total",
        "sipgate_calls_ringing_since_timestamp_seconds",
        "sipgate_callbacks_pending",
        "sipgate_callbacks_total",
        "sipgate_callback_delay_seconds",
    }
)
ALL = ".*"  # a matcher for every value, on purpose: the whole that a share divides by
RANGE = "$__range"
FOLLOW_DIRECTION = '=~"$direction"'
# The service level is about callers: its figures keep incoming calls whatever $direction says.
INCOMING = '="in"'
# The dashboard variable the service level is compared with (a share, 0.8 by default).
SERVICE_LEVEL_TARGET = "$service_level_target"


def family(metric: str) -> str:
    """Return the metric family of a series name (a histogram's name without _bucket etc.)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if metric.endswith(suffix) and metric.removesuffix(suffix) in LINE_FAMILIES:
            return metric.removesuffix(suffix)
    return metric


def sel(metric: str, *, direction: str = FOLLOW_DIRECTION, **matchers: str) -> str:
    """Return a selector restricted to the dashboard's job, instance, direction and line.

    direction is the matcher of the direction label; empty for metrics without one.
    """
    parts = ['job="$job"', 'instance=~"$instance"']
    if direction:
        parts.append(f"direction{direction}")
    if family(metric) in LINE_FAMILIES:
        parts.append('line=~"$line"')
    parts += [f"{name}{value}" for name, value in matchers.items()]
    return f"{metric}{{{', '.join(parts)}}}"


def own(metric: str, **matchers: str) -> str:
    """Return a selector of a metric without a direction label (the exporter's own, teams)."""
    return sel(metric, direction="", **matchers)


def incoming(metric: str, **matchers: str) -> str:
    """Return a selector of incoming calls only, whatever the direction variable selects."""
    return sel(metric, direction=INCOMING, **matchers)


def team_sel(metric: str, team: str = "$team") -> str:
    """Return a selector of a per-team metric, restricted to job, instance and team."""
    return own(metric, team=regex(team))


def eq(value: str) -> str:
    """Return an equality matcher suffix for sel()."""
    return f'="{value}"'


def regex(value: str) -> str:
    """Return a regex matcher suffix for sel()."""
    return f'=~"{value}"'


def increase(selector: str, window: str = "$__rate_interval") -> str:
    """Return increase() over the window."""
    return f"increase({selector}[{window}])"


def rate(selector: str) -> str:
    """Return rate() over $__rate_interval."""
    return f"rate({selector}[$__rate_interval])"


def sum_by(by: str, inner: str) -> str:
    """Return inner summed by the given labels (all of them when by is empty)."""
    return f"sum by ({by}) ({inner})" if by else f"sum ({inner})"


def per_minute(selector: str, by: str) -> str:
    """Return the per-minute rate of a counter, summed by the given labels."""
    return f"60 * {sum_by(by, rate(selector))}"


def in_range(selector: str, by: str) -> str:
    """Return the increase of a counter over the selected time range, summed by labels."""
    return sum_by(by, increase(selector, RANGE))


def quantile(q: float, buckets: str, by: str = "") -> str:
    """Return histogram_quantile over a bucket selector, keeping the given labels."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {sum_by(labels, rate(buckets))})"


def ended(window: str, by: str = "outcome", outcomes: str = "") -> str:
    """Return calls ended in the window (optionally only some outcomes), summed by labels."""
    metric = "sipgate_calls_ended_total"
    selector = sel(metric, outcome=regex(outcomes)) if outcomes else sel(metric)
    return sum_by(by, increase(selector, window))


def answer_rate(window: str | None) -> str:
    """Return the share of ended calls a person answered, by direction (None: as a rate)."""

    def count(selector: str) -> str:
        return sum_by("direction", rate(selector) if window is None else increase(selector, window))

    answered = count(sel("sipgate_calls_ended_total", outcome=eq("answered")))
    # "> 0" drops a direction without ended calls instead of showing NaN.
    return f"{answered} / ({count(sel('sipgate_calls_ended_total'))} > 0)"


def ratio(numerator: str, denominator: str) -> str:
    """Return numerator / denominator, left out ("> 0") where the denominator is zero."""
    return f"{numerator} / ({denominator} > 0)"


def share_in_range(part: str, whole: str, by: str = "") -> str:
    """Return the share of two counters' increases over the selected range, summed by labels."""
    return ratio(in_range(part, by), in_range(whole, by))


def share_per_interval(part: str, whole: str, by: str) -> str:
    """Return the share of two counters' rates over $__rate_interval, summed by labels."""
    return ratio(sum_by(by, rate(part)), sum_by(by, rate(whole)))


def mean_in_range(histogram: str, by: str = "", **matchers: str) -> str:
    """Return the mean of an incoming-call histogram's observations over the selected range."""
    total = incoming(f"{histogram}_sum", **matchers)
    count = incoming(f"{histogram}_count", **matchers)
    return share_in_range(total, count, by)


def quantile_in_range(q: float, buckets: str) -> str:
    """Return histogram_quantile over a bucket selector's increase over the selected range;
    nothing (rather than NaN) when nothing was observed in the range."""
    return f"histogram_quantile({q}, {sum_by('le', increase(buckets, RANGE))}) >= 0"


def calls_in_clock_hour(counter: str, hour: int) -> str:
    """Return a counter's increase during clock hour `hour` (UTC) of every day in the range.

    A subquery evaluates the increase over each whole hour of the range, at the hour's end;
    hour() keeps those ending at hour + 1, and sum_over_time adds them up. A range without
    such an hour gives 0 instead of nothing.
    """
    ends = (hour + 1) % 24
    hourly = f"{sum_by('', increase(counter, '1h'))} and on() hour() == {ends}"
    return f"sum_over_time(({hourly})[{RANGE}:1h]) or vector(0)"
