"""Every PromQL query of the Grafana dashboard, with its variables substituted for a test.

Use in an end-to-end test against a Prometheus fed by the exporter::

    from tests.dashboard_queries import panel_queries

    for query in panel_queries():
        assert prometheus_returns_data(query.expr), query

`variables` overrides single values, e.g. ``panel_queries({"instance": "127.0.0.1:9850"})``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "grafana" / "dashboards" / "sipgate.json"

# What Grafana would put in for a test Prometheus that scrapes the exporter as job "sipgate".
TEST_VARIABLES: Mapping[str, str] = {
    "datasource": "prometheus",
    "job": "sipgate",
    "instance": ".*",
    "direction": ".*",
    "line": ".*",
    "team": ".*",
    "service_level_target": "0.8",
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval": "15s",
}

# $name, ${name} and ${name:format}; Grafana's [[name]] form is deprecated and not used here.
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\$(?P<bare>\w+)")


class UnknownVariableError(KeyError):
    """A query uses a variable that has no substitute."""

    def __init__(self, name: str, expr: str) -> None:
        super().__init__(f"no value for ${name} in {expr!r}")
        self.name = name
        self.expr = expr


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, with the expression ready to send to Prometheus."""

    panel: str
    ref_id: str
    expr: str
    raw_expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.panel!r} {self.ref_id}: {self.expr}"


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    """Load the dashboard JSON."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel that is not a row, including panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana variables in expr; raise UnknownVariableError for one without value."""

    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name not in variables:
            raise UnknownVariableError(name, expr)
        return variables[name]

    return _VARIABLE.sub(value, expr)


def panel_queries(
    variables: Mapping[str, str] | None = None, path: Path = DASHBOARD
) -> list[PanelQuery]:
    """Return every panel query with variables substituted (TEST_VARIABLES, then overrides)."""
    values = {**TEST_VARIABLES, **(variables or {})}
    return [
        PanelQuery(
            panel=panel.get("title", f"panel {panel.get('id')}"),
            ref_id=target.get("refId", ""),
            expr=substitute(target["expr"], values),
            raw_expr=target["expr"],
            instant=bool(target.get("instant", False)),
        )
        for panel in iter_panels(load_dashboard(path))
        for target in panel.get("targets", [])
        if "expr" in target
    ]
