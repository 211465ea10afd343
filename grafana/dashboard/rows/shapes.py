"""What the rows share: the series they select and the shapes of their panels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from grafana_foundation_sdk.builders.bargauge import Panel as BarGaugePanel
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.common import BigValueTextMode
from grafana_foundation_sdk.models.dashboard import Panel

from dashboard.panels import (
    NEUTRAL,
    SeriesLayout,
    StatLayout,
    Steps,
    bargauge,
    stat,
    target,
    timeseries,
)
from dashboard.queries import (
    eq,
    in_range,
    incoming,
    own,
    per_minute,
    quantile,
    rate,
    sel,
    sum_by,
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


# Panel shapes that several rows share.


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
