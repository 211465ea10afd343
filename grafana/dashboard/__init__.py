"""The sipgate.io calls dashboard, built with the Grafana Foundation SDK's typed builders."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, Row
from grafana_foundation_sdk.models.common import DataSourceRef
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from . import call_log
from .rows import ROWS
from .variables import variables

# Grafana 12.4 writes schemaVersion 42; grafana/schema/dashboard.schema.json caps it there.
SCHEMA_VERSION = 42


def builtin_annotations() -> AnnotationQuery:
    """Return Grafana's built-in annotations and alerts, hidden from the toggles."""
    return (
        AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


def build() -> DashboardModel:
    """Return the whole dashboard."""
    builder = (
        Dashboard("sipgate.io calls")
        .uid("sipgate-calls")
        .description("Calls, outcomes, wait and talk time from the sipgate.io exporter.")
        .tags(["sipgate", "telephony"])
        .version(1)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .timezone("browser")
        .time("now-24h", "now")
        .refresh("1m")
        .annotation(builtin_annotations())
        .variables(variables())
        .links([])
    )
    # The SDK places panels left to right and wraps only after a full line of 24 columns,
    # so a panel that does not fit must start a line (the tests check the grid).
    for title, row in ROWS:
        builder.with_row(Row(title))
        for shown in row():
            builder.with_panel(shown)
    return conform(builder.build())


def build_call_log() -> DashboardModel:
    """Return the call log dashboard, of the call records in PostgreSQL."""
    return conform(call_log.dashboard())


def conform(model: DashboardModel) -> DashboardModel:
    """Return the SDK's model with what its builders cannot set made as Grafana 12.4 wants."""
    model.schema_version = SCHEMA_VERSION  # no builder method, and the SDK's default is older
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number  # ids unique in the dashboard; the SDK assigns none
    for variable in model.templating.list_val or []:
        # The SDK writes these interval-variable fields on every variable; 12.4's schema has none.
        variable.auto = variable.auto_min = variable.auto_count = None
    return model
