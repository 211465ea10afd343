"""Template variables: datasource, job, instance, direction, line, team, service level target."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    DatasourceVariable,
    QueryVariable,
)
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import (
    VariableHide,
    VariableModel,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from .panels import DATASOURCE
from .queries import ALL

# Service level targets to choose from (shares), and the one selected by default.
TARGETS = ("0.5", "0.6", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95")
DEFAULT_TARGET = "0.8"


def option(value: str, text: str = "", selected: bool | None = None) -> VariableOption:
    """Return a variable value (its text defaults to the value)."""
    return VariableOption(text=text or value, value=value, selected=selected)


def everything(selected: bool | None = None) -> VariableOption:
    """Return the All value of a multi-value variable."""
    return option("$__all", "All", selected)


def label_values(name: str, label: str, query: str) -> QueryVariable:
    """Return a variable listing a label's values, refreshed with the time range."""
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def filter_values(name: str, label: str, query: str) -> QueryVariable:
    """Return a multi-value label_values variable, All (any value) by default."""
    variable = label_values(name, label, query).current(everything())
    return variable.include_all(True).all_value(ALL).multi(True)


def breakdown(name: str, label: str, metric: str) -> QueryVariable:
    """Return a filter on a label of one exporter metric (line, team)."""
    selector = f'{metric}{{job="$job", instance=~"$instance"}}'
    return filter_values(name, label, f"label_values({selector}, {name})")


def variables() -> list[Builder[VariableModel]]:
    """Return the template variables in the order the dashboard shows them."""
    job = label_values("job", "Job", "label_values(sipgate_exporter_build_info, job)")
    instances = 'label_values(sipgate_exporter_build_info{job="$job"}, instance)'
    return [
        DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(option("prometheus", "Prometheus"))
        .hide(VariableHide.DONT_HIDE)
        .regex(""),
        job.current(option("sipgate")).include_all(False).multi(False),
        filter_values("instance", "Instance", instances),
        CustomVariable("direction")
        .label("Direction")
        .values("in,out")
        .current(everything())
        .options(
            [everything(selected=True), option("in", selected=False), option("out", selected=False)]
        )
        .include_all(True)
        .all_value(ALL)
        .multi(True),
        breakdown("line", "Line", "sipgate_calls_total"),
        breakdown("team", "Team", "sipgate_team_calls_answered_total"),
        service_level_target(),
    ]


def service_level_target() -> CustomVariable:
    """Return the share of offered calls to answer in target: the service level stat turns red
    below it. A custom variable, so that only shares between 0 and 1 can be chosen."""
    choices = [option(value, selected=value == DEFAULT_TARGET) for value in TARGETS]
    return (
        CustomVariable("service_level_target")
        .label("Service level target")
        .description("Share of offered calls to answer within the exporter's target wait.")
        .values(",".join(TARGETS))
        .current(option(DEFAULT_TARGET))
        .options(choices)
        .include_all(False)
        .multi(False)
        .allow_custom_value(False)
    )
