"""The panel shapes of the dashboard, one helper each, on the SDK's typed panel builders."""

from __future__ import annotations

from collections.abc import Sequence
from string import ascii_uppercase
from typing import NamedTuple, Protocol, Self, TypedDict, TypeVar

from grafana_foundation_sdk.builders.bargauge import Panel as BarGaugePanel
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    TableSortByFieldState,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import FieldColor, ThresholdsConfig
from grafana_foundation_sdk.builders.heatmap import (
    HeatmapColorOptions,
    RowsHeatmapOptions,
    YAxisConfig,
)
from grafana_foundation_sdk.builders.heatmap import Panel as HeatmapPanel
from grafana_foundation_sdk.builders.piechart import Panel as PieChartPanel
from grafana_foundation_sdk.builders.piechart import PieChartLegendOptions
from grafana_foundation_sdk.builders.prometheus import Dataquery as PrometheusQuery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataTransformerConfig,
    DynamicConfigValue,
    FieldColorModeId,
    Threshold,
    ThresholdsMode,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.piechart import PieChartLegendValues, PieChartType
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
TODAY = "now/d"  # panel relative time "today so far"; its $__range then starts at midnight

Steps = tuple[tuple[str, float | None], ...]  # (color, from value); the first from -Infinity
NEUTRAL: Steps = (("blue", None),)
ANSWER_RATE: Steps = (("red", None), ("orange", 0.6), ("green", 0.8))
Queries = Sequence[PrometheusQuery]


class PanelBuilder(Protocol):
    """What every SDK panel builder offers and frame() uses."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: common.DataSourceRef) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def targets(self, targets: list[Builder[Dataquery]]) -> Self: ...


class LatestValuePanel(PanelBuilder, Protocol):
    """A panel builder that reduces each series to one value."""

    def decimals(self, decimals: float) -> Self: ...
    def reduce_options(self, reduce_options: Builder[common.ReduceDataOptions]) -> Self: ...


class StatLayout(TypedDict, total=False):
    """How stat() lays a panel out and colors it, for helpers that pass it on."""

    width: int
    height: int
    today: bool
    steps: Steps
    text_mode: common.BigValueTextMode


class Column(NamedTuple):
    """A column of a table: the query whose value it shows, its header, unit and decimals."""

    ref: str
    header: str
    unit: str = "short"
    decimals: int = 0


class SeriesLayout(TypedDict, total=False):
    """How timeseries() lays a panel out, for helpers that pass it on."""

    width: int
    stacked: bool


P = TypeVar("P", bound=PanelBuilder)
L = TypeVar("L", bound=LatestValuePanel)


def target(
    expr: str, legend: str = "", *, instant: bool = False, fmt: PromQueryFormat | None = None
) -> PrometheusQuery:
    """Return a Prometheus query (its refId is given by the panel it is placed in)."""
    query = PrometheusQuery().datasource(DATASOURCE).expr(expr).legend_format(legend or "__auto")
    if fmt is not None:
        query.format(fmt)
    return query.instant() if instant else query.range()


def thresholds(steps: Steps) -> ThresholdsConfig:
    """Return absolute thresholds."""
    levels = [Threshold(value=value, color=color) for color, value in steps]
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(levels)


def colors(mode: FieldColorModeId) -> FieldColor:
    """Return the field color scheme."""
    return FieldColor().mode(mode)


def tooltip(mode: common.TooltipDisplayMode, sort: common.SortOrder) -> VizTooltipOptions:
    """Return the tooltip options."""
    return VizTooltipOptions().mode(mode).sort(sort)


def frame(
    panel: P, texts: tuple[str, str], unit: str, queries: Queries, size: tuple[int, int]
) -> P:
    """Return the panel with what all have: texts (title, description), unit, size, queries."""
    (title, description), (width, height) = texts, size
    refs: list[Builder[Dataquery]] = [
        query.ref_id(ref) for ref, query in zip(ascii_uppercase, queries, strict=False)
    ]
    panel.title(title).description(description).datasource(DATASOURCE).unit(unit)
    return panel.span(width).height(height).targets(refs)


def latest(
    panel: L, texts: tuple[str, str], unit: str, queries: Queries, size: tuple[int, int]
) -> L:
    """Return frame() of a panel showing the latest value of each series."""
    framed = frame(panel, texts, unit, queries, size)
    framed.reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
    # Call counts in whole numbers: increase() extrapolates, and 3.08 calls reads wrong.
    return framed.decimals(0) if unit == "short" else framed


def stat(
    title: str,
    description: str,
    unit: str,
    queries: Queries,
    *,
    width: int = 4,
    height: int = 4,
    today: bool = False,
    steps: Steps = NEUTRAL,
    text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO,
) -> StatPanel:
    """Return a stat panel: the latest value of each series, colored by thresholds."""
    panel = (
        latest(StatPanel(), (title, description), unit, queries, (width, height))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .text_mode(text_mode)
        .thresholds(thresholds(steps))
        .color_scheme(colors(FieldColorModeId.THRESHOLDS))
    )
    return panel.time_from(TODAY) if today else panel


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Queries,
    *,
    width: int = 12,
    stacked: bool = False,
) -> TimeseriesPanel:
    """Return a time series panel (height 8) of lines from zero, or of stacked areas."""
    legend = VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
    panel = (
        frame(TimeseriesPanel(), (title, description), unit, queries, (width, 8))
        .legend(legend.placement(common.LegendPlacement.BOTTOM).show_legend(True))
        .tooltip(tooltip(common.TooltipDisplayMode.MULTI, common.SortOrder.DESCENDING))
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(60 if stacked else 10)
        .show_points(common.VisibilityMode.NEVER)
        .color_scheme(colors(FieldColorModeId.PALETTE_CLASSIC))
        .thresholds(thresholds(NEUTRAL))
        .min(0)
    )
    if stacked:
        panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
    return panel


def piechart(
    title: str, description: str, unit: str, queries: Queries, width: int
) -> PieChartPanel:
    """Return a donut chart (height 8) of the latest value of each series, legend a table."""
    legend = PieChartLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
    # The SDK's default legend is hidden; Grafana's, which this panel always had, is shown.
    legend.placement(common.LegendPlacement.RIGHT).show_legend(True)
    return (
        latest(PieChartPanel(), (title, description), unit, queries, (width, 8))
        .pie_type(PieChartType.DONUT)
        .legend(legend.values([PieChartLegendValues.VALUE]))
        .tooltip(tooltip(common.TooltipDisplayMode.SINGLE, common.SortOrder.NONE))
        .color_scheme(colors(FieldColorModeId.PALETTE_CLASSIC))
    )


def bargauge(
    title: str, description: str, unit: str, queries: Queries, width: int, *, vertical: bool = False
) -> BarGaugePanel:
    """Return bars (height 8) of the latest value of each series, from zero; horizontal ones
    unless vertical."""
    orientation = common.VizOrientation.VERTICAL if vertical else common.VizOrientation.HORIZONTAL
    return (
        latest(BarGaugePanel(), (title, description), unit, queries, (width, 8))
        .orientation(orientation)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .color_scheme(colors(FieldColorModeId.PALETTE_CLASSIC))
        .min(0)
        .thresholds(thresholds(NEUTRAL))
    )


def heatmap(title: str, description: str, bucket_unit: str, queries: Queries) -> HeatmapPanel:
    """Return a heatmap (8 by 8) of pre-bucketed histogram series; its cells count calls."""
    scheme = HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme("Oranges")
    return (
        frame(HeatmapPanel(), (title, description), "short", queries, (8, 8))
        .calculate(False)
        .cell_gap(1)
        .color(scheme.steps(64).exponent(0.5))
        .y_axis(YAxisConfig().axis_placement(common.AxisPlacement.LEFT).unit(bucket_unit))
        .rows_frame(RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
        .mode(common.TooltipDisplayMode.SINGLE)
        .show_y_histogram()
        .show_legend()
    )


def fixed_colors(panel: StatPanel, colors_by_ref: dict[str, str]) -> StatPanel:
    """Return the panel with each query's values in a fixed color instead of by thresholds."""
    for ref, color in colors_by_ref.items():
        fixed = {"mode": FieldColorModeId.FIXED.value, "fixedColor": color}
        panel.override_by_query(ref, [DynamicConfigValue(id_val="color", value=fixed)])
    return panel


def table(
    title: str,
    description: str,
    queries: Queries,
    columns: Sequence[Column],
    size: tuple[int, int],
    key: str,
) -> TablePanel:
    """Return a table of instant queries in table format, joined on the label `key`.

    Grafana names each query's value column "Value #<refId>"; the columns give them headers,
    units and decimals. The table is sorted by the first column, largest first.
    """
    panel = frame(TablePanel(), (title, description), "short", queries, size).decimals(0)
    order = {key: 0} | {f"Value #{column.ref}": n for n, column in enumerate(columns, 1)}
    panel.transformations(
        [
            DataTransformerConfig(id_val="merge", options={}),
            DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "indexByName": order},
            ),
        ]
    )
    for column in columns:
        properties = [
            DynamicConfigValue(id_val="displayName", value=column.header),
            DynamicConfigValue(id_val="unit", value=column.unit),
            DynamicConfigValue(id_val="decimals", value=column.decimals),
        ]
        panel.override_by_name(f"Value #{column.ref}", properties)
    first = TableSortByFieldState().display_name(columns[0].header).desc(True)
    return panel.sort_by([first]).show_header(True).cell_height(common.TableCellHeight.SM)
