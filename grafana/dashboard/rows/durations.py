"""The rows of wait and talk time."""

from __future__ import annotations

from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboard.panels import (
    heatmap,
    target,
)
from dashboard.queries import (
    increase,
    rate,
    sel,
    sum_by,
)

from .shapes import (
    Panels,
    legend,
    quantiles_panel,
    series,
)


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
