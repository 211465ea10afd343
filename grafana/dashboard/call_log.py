"""The "sipgate.io call log" dashboard: the call records that several replicas keep in PostgreSQL.

Its queries read the tables of the exporter's schema `sipgate_exporter` through Grafana's
built-in PostgreSQL datasource (uid `sipgate-postgres`, provisioned for the compose profile
"ha"); `SQL` holds them by panel, for the tests to run against a real database.
"""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders.common import TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

DATASOURCE: Final = common.DataSourceRef(
    type_val="grafana-postgresql-datasource", uid="sipgate-postgres"
)
UID: Final = "sipgate-call-log"

# Every panel's query, by title. $__timeFilter(column) is Grafana's macro for the time range.
LAST_CALLS: Final = """SELECT started_at AS "started", direction, line, outcome,
  caller, callee, wait_seconds AS "wait", talk_seconds AS "talk", team, user_name AS "user",
  hangup_cause AS "hangup cause"
FROM sipgate_exporter.calls
WHERE $__timeFilter(started_at)
ORDER BY started_at DESC
LIMIT 500"""
OWED: Final = """SELECT DISTINCT ON (d.party, d.line)
  c.caller AS "number to call", d.line, to_timestamp(d.since) AS "missed since",
  c.outcome AS "last call", c.started_at AS "last call at"
FROM sipgate_exporter.callback_debts d
LEFT JOIN sipgate_exporter.calls c
  ON c.party = d.party AND c.line = d.line AND c.direction = 'in'
ORDER BY d.party, d.line, c.started_at DESC"""
LONGEST_WAITS: Final = """SELECT started_at AS "started", line, caller, outcome,
  wait_seconds AS "wait"
FROM sipgate_exporter.calls
WHERE direction = 'in' AND wait_seconds IS NOT NULL AND $__timeFilter(started_at)
ORDER BY wait_seconds DESC
LIMIT 20"""
FREQUENT_CALLERS: Final = """SELECT caller, count(*) AS "calls",
  count(*) FILTER (WHERE outcome <> 'answered') AS "not answered",
  max(started_at) AS "last call"
FROM sipgate_exporter.calls
WHERE direction = 'in' AND caller IS NOT NULL AND caller <> 'anonymous'
  AND $__timeFilter(started_at)
GROUP BY caller
ORDER BY count(*) DESC, max(started_at) DESC
LIMIT 20"""
SQL: Final = {
    "Missed callers owed a callback": OWED,
    "Longest waits today": LONGEST_WAITS,
    "Most frequent callers": FREQUENT_CALLERS,
    "Last calls": LAST_CALLS,
}
_DESCRIPTIONS: Final = {
    "Missed callers owed a callback": (
        "Callers who called a line, got nobody and have not been called back or called "
        "again and been answered: the number to call, since when it is owed. Without numbers "
        "(--state.call-records-numbers=none) or once the call records are past their retention "
        "the number is empty."
    ),
    "Longest waits today": "Today's incoming calls that waited longest for a person.",
    "Most frequent callers": "The numbers that called most often in the selected time range.",
    "Last calls": "Every call that ended in the selected time range, newest first.",
}
# Which column holds seconds, by panel; the table sorts by the first column given.
_SECONDS: Final = {
    "Missed callers owed a callback": (),
    "Longest waits today": ("wait",),
    "Most frequent callers": (),
    "Last calls": ("wait", "talk"),
}
_SORTED_BY: Final = {
    "Missed callers owed a callback": ("missed since", False),
    "Longest waits today": ("wait", True),
    "Most frequent callers": ("calls", True),
    "Last calls": ("started", True),
}
_SIZES: Final = {
    "Missed callers owed a callback": (12, 10),
    "Longest waits today": (12, 10),
    "Most frequent callers": (12, 10),
    "Last calls": (24, 14),
}
TODAY: Final = "now/d"


class SqlQuery(Builder[Dataquery]):
    """A query of Grafana's PostgreSQL datasource, in code mode, as a table."""

    def __init__(self, sql: str, ref_id: str = "A") -> None:
        self._data: dict[str, Any] = {
            "refId": ref_id,
            "datasource": DATASOURCE.to_json(),
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": sql,
        }

    def build(self) -> Dataquery:
        return UnknownDataquery(dict(self._data))


def table(title: str) -> TablePanel:
    """The table panel of one of SQL's queries."""
    width, height = _SIZES[title]
    column, descending = _SORTED_BY[title]
    panel = (
        TablePanel()
        .title(title)
        .description(_DESCRIPTIONS[title])
        .datasource(DATASOURCE)
        .targets([SqlQuery(SQL[title])])
        .span(width)
        .height(height)
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
        .sort_by([TableSortByFieldState().display_name(column).desc(descending)])
    )
    for name in _SECONDS[title]:
        panel.override_by_name(name, [DynamicConfigValue(id_val="unit", value="s")])
    if title == "Longest waits today":
        panel.time_from(TODAY)
    return panel


def dashboard() -> DashboardModel:
    """The whole call log dashboard, before `conform`."""
    builder = (
        Dashboard("sipgate.io call log")
        .uid(UID)
        .description("Call records from PostgreSQL, kept by exporters that share their state.")
        .tags(["sipgate", "telephony"])
        .version(1)
        .editable()
        .timezone("browser")
        .time("now-24h", "now")
        .refresh("1m")
        .links([])
    )
    for title in SQL:
        builder.with_panel(table(title))
    return builder.build()
