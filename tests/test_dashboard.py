"""The Grafana dashboard: generated, valid for Grafana's schema, conventional, valid PromQL."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest

from tests.dashboard_queries import (
    REPO,
    TEST_VARIABLES,
    UnknownVariableError,
    iter_panels,
    load_dashboard,
    panel_queries,
    substitute,
)

GRAFANA = REPO / "grafana"
SCHEMA = GRAFANA / "schema" / "dashboard.schema.json"
SCHEMA_PACKAGE = GRAFANA / "schema" / "package.json"
DATASOURCE_PROVISIONING = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
SCHEMA_VERSION = 42  # Grafana 12.4
GRID_WIDTH = 24

# The exporter's metric contract: series name -> labels besides job and instance.
_HISTOGRAMS = {
    "sipgate_call_wait_seconds": {"direction", "outcome", "line"},
    "sipgate_call_duration_seconds": {"direction", "answered_by", "line"},
    "sipgate_callback_delay_seconds": {"line"},
    "sipgate_webhook_request_duration_seconds": set(),
}
CONTRACT: dict[str, frozenset[str]] = {
    "sipgate_calls_total": frozenset({"direction", "line"}),
    "sipgate_calls_ended_total": frozenset({"direction", "outcome", "line"}),
    "sipgate_calls_active": frozenset({"direction", "state", "line"}),
    "sipgate_calls_offered_total": frozenset({"direction", "line"}),
    "sipgate_calls_answered_in_target_total": frozenset({"direction", "line"}),
    "sipgate_calls_abandoned_total": frozenset({"direction", "line"}),
    "sipgate_calls_short_abandoned_total": frozenset({"direction", "line"}),
    "sipgate_calls_answered_unnamed_total": frozenset({"direction", "line"}),
    "sipgate_calls_ringing_since_timestamp_seconds": frozenset({"direction", "line"}),
    "sipgate_callbacks_pending": frozenset({"line"}),
    "sipgate_callbacks_total": frozenset({"line", "result"}),
    "sipgate_callbacks_dropped_total": frozenset(),
    "sipgate_team_calls_answered_total": frozenset({"team"}),
    "sipgate_team_talk_seconds_total": frozenset({"team"}),
    "sipgate_team_outgoing_calls_total": frozenset({"team"}),
    "sipgate_user_calls_answered_total": frozenset({"user"}),
    "sipgate_user_talk_seconds_total": frozenset({"user"}),
    "sipgate_user_outgoing_calls_total": frozenset({"user"}),
    "sipgate_label_values_overflow_total": frozenset({"label"}),
    "sipgate_config_reloads_total": frozenset({"outcome"}),
    "sipgate_config_last_reload_successful": frozenset(),
    "sipgate_hangups_total": frozenset({"direction", "cause"}),
    "sipgate_dtmf_events_total": frozenset(),
    "sipgate_webhook_requests_total": frozenset({"event", "code"}),
    "sipgate_webhook_rejected_requests_total": frozenset({"reason"}),
    "sipgate_webhook_last_received_timestamp_seconds": frozenset(),
    "sipgate_events_unmatched_total": frozenset({"event"}),
    "sipgate_exporter_build_info": frozenset({"version"}),
    "sipgate_state_write_errors_total": frozenset({"part"}),
    "sipgate_web_connections_dropped_total": frozenset({"reason"}),
    "process_resident_memory_bytes": frozenset(),
    "process_cpu_seconds_total": frozenset(),
    "up": frozenset(),
    **{f"{name}_bucket": frozenset(labels | {"le"}) for name, labels in _HISTOGRAMS.items()},
    **{f"{name}_sum": frozenset(labels) for name, labels in _HISTOGRAMS.items()},
    **{f"{name}_count": frozenset(labels) for name, labels in _HISTOGRAMS.items()},
}
LABEL_VALUES: dict[str, frozenset[str]] = {
    "direction": frozenset({"in", "out"}),
    "outcome": frozenset(
        {"answered", "voicemail", "missed", "busy", "rejected", "failed", "forwarded", "expired"}
    ),
    "state": frozenset({"ringing", "talking"}),
    "answered_by": frozenset({"person", "unnamed", "voicemail"}),
    "result": frozenset({"called_back", "called_again", "expired"}),
    "cause": frozenset(
        {"normalClearing", "busy", "cancel", "noAnswer", "congestion", "notFound", "forwarded"}
        | {"other"}
    ),
    "event": frozenset({"newCall", "answer", "hangup", "dtmf", "unknown", "invalid"}),
    "label": frozenset({"line", "team", "user"}),
}
# Where one metric's label has other values than LABEL_VALUES gives for that label name.
METRIC_LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("sipgate_config_reloads_total", "outcome"): frozenset({"success", "failure"}),
}
# label -> the dashboard variable that every selector of a metric with that label follows.
VARIABLE_FILTERS: dict[str, str] = {"direction": "$direction", "line": "$line", "team": "$team"}
# Instead of its variable, a selector may match every value on purpose (the whole of a share),
# or keep only incoming calls (the service level is about callers, whatever $direction says).
ALL_VALUES = ".*"
DELIBERATE: dict[str, frozenset[tuple[str, str]]] = {
    "direction": frozenset({("=", "in")}),
}
GRAFANA_GLOBALS = frozenset({"__rate_interval", "__range", "__interval"})
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "count", "group", "topk", "bottomk"})
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)
INSTANT_PANELS = frozenset({"stat", "piechart", "bargauge", "gauge", "table"})

Problems = list[str]


# --- a small PromQL scanner, enough for the conventions --------------------------------------


@dataclass(frozen=True)
class Selector:
    """A metric selector in an expression."""

    name: str
    matchers: dict[str, tuple[str, str]]
    start: int
    end: int
    enclosing: tuple[str, ...]  # callee of each enclosing parenthesis, outermost first


_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # string literal
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"  # label list
    r"|\[[^\]]*\]"  # range
    r"|\{[^}]*\}"  # matchers
    r"|\b\d[\w.]*"  # number
    r"|\$\{\w+(?::\w+)?\}|\$\w+"  # a Grafana variable standing for a number
    r"|(?P<name>[a-zA-Z_:][\w:]*)"
)
_SUBQUERY = re.compile(r"\)\[\$__range:(?P<step>\d+[smhd])\]")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_BY = re.compile(r"\b(by|without)\s*\(([^)]*)\)")
_RANGE_CALL = re.compile(
    r"(?P<fn>\w+)\(\s*(?P<metric>[a-zA-Z_:][\w:]*)\s*(?:\{[^}]*\})?\s*"
    r"\[(?P<range>[^\]]*)\]\s*\)"
)


def _masked(expr: str) -> str:
    """Return expr with strings, label lists, ranges and matchers blanked, same length."""
    blank = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: " " * len(m.group()), expr)
    blank = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
        lambda m: " " * len(m.group()),
        blank,
    )
    return re.sub(r"\{[^}]*\}|\[[^\]]*\]", lambda m: " " * len(m.group()), blank)


def _enclosing(masked: str, position: int) -> tuple[str, ...]:
    """Return the callee of every parenthesis open at position ("" for plain grouping)."""
    stack: list[str] = []
    for index, char in enumerate(masked[:position]):
        if char == "(":
            callee = re.search(r"([a-zA-Z_:][\w:]*)\s*$", masked[:index])
            stack.append(callee.group(1) if callee else "")
        elif char == ")" and stack:
            stack.pop()
    return tuple(stack)


def selectors(expr: str) -> list[Selector]:
    """Return every metric selector in expr."""
    masked = _masked(expr)
    found = []
    for token in _TOKEN.finditer(expr):
        name = token.group("name")
        if name is None or name in KEYWORDS:
            continue
        if masked[token.end() :].lstrip().startswith("("):
            continue  # a function, or an aggregation (its by-list is blanked in masked)
        rest = expr[token.end() :]
        end = token.end()
        matchers: dict[str, tuple[str, str]] = {}
        braces = re.match(r"\s*(\{[^}]*\})", rest)
        if braces:
            end += braces.end()
            matchers = {m[0]: (m[1], m[2]) for m in _MATCHER.findall(braces.group(1))}
        found.append(
            Selector(name, matchers, token.start(), end, _enclosing(masked, token.start()))
        )
    return found


def variables_used(expr: str) -> set[str]:
    """Return the names of the Grafana variables in expr."""
    return {a or b for a, b in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", expr)}


# --- the conventions, one checker each; each returns problems naming the panel ---------------


@dataclass(frozen=True)
class Target:
    """One query of one panel, as the linter sees it."""

    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def where(self) -> str:
        return f"panel {self.panel.get('title')!r} target {self.target.get('refId')}"

    @property
    def expr(self) -> str:
        return str(self.target.get("expr", ""))

    @property
    def instant(self) -> bool:
        return bool(self.target.get("instant")) and not self.target.get("range", False)


def check_ranges(t: Target) -> Problems:
    """Ranges are $__rate_interval inside rate/increase; $__range only in instant increase.

    One subquery is allowed, for calls per clock hour: sum_over_time((...)[$__range:STEP]) in
    an instant query, with increase() over exactly STEP inside it.
    """
    problems = []
    subqueries = []  # (start, end, step) of each subquery's argument
    for subquery in _SUBQUERY.finditer(t.expr):
        start = _opening(t.expr, subquery.start())
        subqueries.append((start, subquery.start(), subquery.group("step")))
        if not t.expr[:start].endswith("sum_over_time(") or not t.instant:
            problems.append(
                f"{t.where}: a subquery [$__range:step] only in sum_over_time() of an instant query"
            )
    calls = list(_RANGE_CALL.finditer(t.expr))
    if len(calls) + len(subqueries) != t.expr.count("["):
        problems.append(f"{t.where}: a range is not the direct argument of rate()/increase()")
    for call in calls:
        fn, window = call.group("fn"), call.group("range")
        step = next((s for start, end, s in subqueries if start < call.start() < end), None)
        if fn not in {"rate", "increase"}:
            problems.append(f"{t.where}: use rate() or increase(), not {fn}()")
        if window == "$__range":
            if fn != "increase" or not t.instant:
                problems.append(f"{t.where}: [$__range] only in increase() of an instant query")
        elif step is not None:
            if window != step:
                problems.append(f"{t.where}: range [{window}] in a subquery must be its step")
        elif window != "$__rate_interval":
            problems.append(f"{t.where}: range [{window}] must be [$__rate_interval]")
    return problems


def _opening(expr: str, closing: int) -> int:
    """Return the index of the parenthesis that the one at `closing` closes (-1 if none)."""
    depth = 0
    for index in range(closing, -1, -1):
        if expr[index] == ")":
            depth += 1
        elif expr[index] == "(":
            depth -= 1
            if depth == 0:
                return index
    return -1


def is_counter(name: str) -> bool:
    """Tell whether a series only ever goes up (counter or histogram part)."""
    return name.endswith(("_total", "_bucket", "_sum", "_count"))


def check_counters(t: Target) -> Problems:
    """Counters appear only as the direct argument of rate() or increase()."""
    problems = []
    for s in selectors(t.expr):
        if is_counter(s.name) and (not s.enclosing or s.enclosing[-1] not in {"rate", "increase"}):
            problems.append(f"{t.where}: counter {s.name} must be wrapped in rate()/increase()")
    return problems


def check_aggregations(t: Target) -> Problems:
    """Every selector is aggregated with sum by (...) or similar; never `without`."""
    problems = []
    if _BY.search(t.expr) and any(m.group(1) == "without" for m in _BY.finditer(t.expr)):
        problems.append(f"{t.where}: aggregate with `by (...)`, not `without (...)`")
    for s in selectors(t.expr):
        if not AGGREGATIONS.intersection(s.enclosing):
            problems.append(f"{t.where}: {s.name} is not aggregated (use sum by (...))")
    for s in selectors(t.expr):
        if s.name.endswith("_bucket"):
            pattern = rf"by\s*\(([^)]*)\)\s*\(\s*(?:rate|increase)\(\s*{s.name}\b"
            by = re.search(pattern, t.expr)
            if not by or "le" not in {label.strip() for label in by.group(1).split(",")}:
                problems.append(f"{t.where}: {s.name} must be summed by (le, ...)")
    return problems


def check_contract(t: Target) -> Problems:
    """Metrics, labels and label values are those the exporter exposes."""
    problems = []
    found = selectors(t.expr)
    labels = {"job", "instance"}.union(*(CONTRACT.get(s.name, frozenset()) for s in found))
    for s in found:
        if s.name not in CONTRACT:
            problems.append(f"{t.where}: {s.name} is not a metric the exporter exposes")
            continue
        for label, (op, value) in s.matchers.items():
            if label not in CONTRACT[s.name] | {"job", "instance"}:
                problems.append(f"{t.where}: {s.name} has no label {label!r}")
            elif "$" not in value and value != ALL_VALUES:
                known = METRIC_LABEL_VALUES.get((s.name, label), LABEL_VALUES.get(label))
                values = value.split("|") if op in {"=~", "!~"} else [value]
                unknown = sorted(set(values) - known) if known is not None else []
                if unknown:
                    problems.append(f"{t.where}: {label} has no value {unknown}")
    for _, by in _BY.findall(t.expr):
        unknown = sorted({x.strip() for x in by.split(",") if x.strip()} - labels)
        if unknown:
            problems.append(f"{t.where}: aggregates by unknown labels {unknown}")
    return problems


def check_filters(t: Target) -> Problems:
    """Every selector follows job and instance, and direction, line, team where they apply."""
    problems = []
    expected = {"job": ("=", "$job"), "instance": ("=~", "$instance")}
    for s in selectors(t.expr):
        wanted = dict(expected)
        for label, variable in VARIABLE_FILTERS.items():
            if label in CONTRACT.get(s.name, frozenset()):
                wanted[label] = ("=~", variable)
        for label, (op, value) in wanted.items():
            matcher = s.matchers.get(label)
            deliberately_all = label in VARIABLE_FILTERS and matcher == ("=~", ALL_VALUES)
            deliberate = matcher in DELIBERATE.get(label, frozenset())
            if matcher != (op, value) and not (deliberately_all or deliberate):
                problems.append(f'{t.where}: {s.name} needs {label}{op}"{value}"')
    return problems


def check_variables(t: Target, defined: set[str]) -> Problems:
    """Every variable in a query is defined or a Grafana global."""
    unknown = sorted(variables_used(t.expr) - defined - GRAFANA_GLOBALS)
    return [f"{t.where}: undefined variables {unknown}"] if unknown else []


TARGET_CHECKS: tuple[Callable[[Target], Problems], ...] = (
    check_ranges,
    check_counters,
    check_aggregations,
    check_contract,
    check_filters,
)


def check_panel(panel: dict[str, Any]) -> Problems:
    """Panel-level conventions: datasource variable, unit, description, targets, instant."""
    title = panel.get("title")
    problems = []
    if panel.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
        problems.append(f"panel {title!r}: datasource must be the ${{datasource}} variable")
    if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
        problems.append(f"panel {title!r}: no unit in fieldConfig.defaults.unit")
    if not str(panel.get("description", "")).strip():
        problems.append(f"panel {title!r}: no description")
    targets = panel.get("targets", [])
    if not targets:
        problems.append(f"panel {title!r}: no queries")
    ref_ids = [t.get("refId") for t in targets]
    if len(set(ref_ids)) != len(ref_ids) or None in ref_ids:
        problems.append(f"panel {title!r}: refIds must be present and unique, got {ref_ids}")
    for target in targets:
        where = f"panel {title!r} target {target.get('refId')}"
        if target.get("datasource") != panel.get("datasource"):
            problems.append(f"{where}: datasource must be the ${{datasource}} variable")
        if not str(target.get("expr", "")).strip():
            problems.append(f"{where}: empty expr")
        if panel.get("type") in INSTANT_PANELS and not Target(panel, target).instant:
            problems.append(f"{where}: a {panel.get('type')} panel needs an instant query")
    return problems


def lint(dashboard: dict[str, Any]) -> Problems:
    """Return every convention the dashboard breaks."""
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    problems = []
    for panel in iter_panels(dashboard):
        problems += check_panel(panel)
        for target in panel.get("targets", []):
            t = Target(panel, target)
            problems += check_variables(t, defined)
            for check in TARGET_CHECKS:
                problems += check(t)
    return problems


# --- tests of the dashboard --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_committed_dashboard_is_generated() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "build_dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_comes_from_the_pinned_package() -> None:
    package = json.loads(SCHEMA_PACKAGE.read_text(encoding="utf-8"))
    pins = package["dependencies"]
    loose = {name: v for name, v in pins.items() if not re.fullmatch(r"\d+\.\d+\.\d+", v)}
    assert not loose, f"pin exact versions in {SCHEMA_PACKAGE}: {loose}"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert f"@grafana/schema {pins['@grafana/schema']}" in schema["$comment"], (
        "dashboard.schema.json is stale: run make -C grafana schema"
    )


def test_dashboard_validates_against_grafana_schema(dashboard: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(dashboard)
    ]
    assert not errors, "\n".join(errors)


def test_schema_rejects_a_misplaced_field(dashboard: dict[str, Any]) -> None:
    broken = copy.deepcopy(dashboard)
    panel = next(p for p in broken["panels"] if p["type"] != "row")
    panel["unit"] = "s"  # belongs in fieldConfig.defaults
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert not validator.is_valid(broken)


def test_schema_version_is_pinned(dashboard: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    supported = schema["definitions"]["Dashboard"]["properties"]["schemaVersion"]["maximum"]
    assert dashboard["schemaVersion"] == SCHEMA_VERSION == supported


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance", "direction"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert variables["direction"]["allValue"] == ".*"
    assert variables["instance"]["allValue"] == ".*"


@pytest.mark.parametrize(
    ("name", "metric"),
    [("line", "sipgate_calls_total"), ("team", "sipgate_team_calls_answered_total")],
)
def test_breakdown_variables(dashboard: dict[str, Any], name: str, metric: str) -> None:
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == name)
    assert variable["type"] == "query"
    assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert variable["query"] == (
        f'label_values({metric}{{job="$job", instance=~"$instance"}}, {name})'
    )
    assert variable["multi"]
    assert variable["includeAll"]
    assert variable["allValue"] == ".*"
    assert variable["current"]["value"] == "$__all"
    assert name in CONTRACT[metric]


def test_breakdown_rows(dashboard: dict[str, Any]) -> None:
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert {"Lines", "Teams", "Users"} <= rows
    titles = {p["title"]: p for p in iter_panels(dashboard)}
    for title in (
        "Answered calls by team in range",
        "Talk time by team in range",
        "Answer share by team in range",
        "Outgoing calls by team in range",
        "Missed calls by line",
    ):
        assert title in titles, f"no panel {title!r}"
    share = titles["Answer share by team in range"]["targets"][0]["expr"]
    numerator, denominator = share.split(" / ", 1)
    assert 'team=~"$team"' in numerator
    # The share is of all answered calls, not only of the selected teams.
    assert 'team=~".*"' in denominator
    assert "$team" not in denominator
    missed = titles["Missed calls by line"]["targets"][0]["expr"]
    assert "sum by (line)" in missed
    assert 'line=~"$line"' in missed


def test_datasource_default_is_the_provisioned_one(dashboard: dict[str, Any]) -> None:
    provisioned = re.findall(r"^\s+uid:\s*(\S+)", DATASOURCE_PROVISIONING.read_text("utf-8"), re.M)
    current = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert provisioned == [current["current"]["value"]]


def test_dashboard_follows_conventions(dashboard: dict[str, Any]) -> None:
    problems = lint(dashboard)
    assert not problems, "\n".join(problems)


def test_panels_fit_the_grid_without_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    problems = []
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"panel ids are not unique: {ids}"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        if grid["x"] + grid["w"] > GRID_WIDTH:
            problems.append(f"panel {panel['title']!r} is wider than the grid")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    problems.append(f"panel {panel['title']!r} overlaps {cells[(x, y)]!r}")
                cells[(x, y)] = panel["title"]
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_contract_metric_is_shown() -> None:
    shown = {s.name for q in panel_queries() for s in selectors(q.raw_expr)}
    parts = ("_bucket", "_sum", "_count")
    families = shown | {n.rsplit("_", 1)[0] for n in shown if n.endswith(parts)}
    expected = {n for n in CONTRACT if n.startswith("sipgate_") and not n.endswith(parts)}
    missing = sorted(expected - families) + sorted(set(_HISTOGRAMS) - families)
    assert not missing, f"metrics on no panel: {missing}"


def test_today_panels_use_today_so_far(dashboard: dict[str, Any]) -> None:
    today = [p for p in iter_panels(dashboard) if "today" in p["title"].lower()]
    assert today
    for panel in today:
        assert panel.get("timeFrom") == "now/d", f"panel {panel['title']!r} needs timeFrom now/d"


def test_wait_time_has_median_p90_and_heatmap(dashboard: dict[str, Any]) -> None:
    wait = [q.raw_expr for q in panel_queries() if "sipgate_call_wait_seconds" in q.raw_expr]
    assert any(e.startswith("histogram_quantile(0.5,") for e in wait)
    assert any(e.startswith("histogram_quantile(0.9,") for e in wait)
    assert any(
        p["type"] == "heatmap" and "sipgate_call_wait_seconds_bucket" in p["targets"][0]["expr"]
        for p in iter_panels(dashboard)
    )


def _panels_by_title(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in iter_panels(dashboard)}


def _row_of(dashboard: dict[str, Any], title: str) -> list[str]:
    """The titles of the panels of a row, in order (rows are expanded: panels follow them)."""
    titles, current = [], None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
        elif current == title:
            titles.append(panel["title"])
    return titles


def test_service_level_row_comes_first(dashboard: dict[str, Any]) -> None:
    assert dashboard["panels"][0] == {**dashboard["panels"][0], "type": "row"}
    assert dashboard["panels"][0]["title"] == "Service level"
    assert _row_of(dashboard, "Service level") == [
        "Service level",
        "Abandon rate",
        "Average speed of answer",
        "Longest wait now",
        "Calls waiting now",
        "Callbacks pending",
        "Service level by line",
        "Abandon rate by line",
        "Service level by line in range",
        "Busy hours (last 7 days, UTC)",
    ]


def test_service_level_stat_is_colored_by_the_target_variable(dashboard: dict[str, Any]) -> None:
    variable = next(
        v for v in dashboard["templating"]["list"] if v["name"] == "service_level_target"
    )
    assert variable["type"] == "custom"
    assert variable["current"]["value"] == "0.8"
    assert all(0 < float(o["value"]) < 1 for o in variable["options"])
    assert not variable["allowCustomValue"]
    panel = _panels_by_title(dashboard)["Service level"]
    met, missed = (t["expr"] for t in panel["targets"])
    level = met.removesuffix(" >= $service_level_target")
    assert level != met
    assert missed == f"{level} < $service_level_target", "the two queries must split one value"
    assert "sipgate_calls_answered_in_target_total" in level.split(" / ")[0]
    assert "sipgate_calls_offered_total" in level.split(" / ")[1]
    colors = {
        o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byFrameRefID"
    }
    assert colors == {"A": "green", "B": "red"}


def test_service_level_figures_are_of_incoming_calls(dashboard: dict[str, Any]) -> None:
    for title in _row_of(dashboard, "Service level"):
        for target in _panels_by_title(dashboard)[title]["targets"]:
            for s in selectors(target["expr"]):
                if "direction" in CONTRACT[s.name]:
                    assert s.matchers["direction"] == ("=", "in"), f"{title}: {s.name}"


def test_longest_wait_is_never_the_age_of_the_epoch(dashboard: dict[str, Any]) -> None:
    expr = _panels_by_title(dashboard)["Longest wait now"]["targets"][0]["expr"]
    assert expr.startswith("(time() - min (sipgate_calls_ringing_since_timestamp_seconds{")
    assert expr.endswith("} > 0)) or vector(0)"), "0 (nobody rings) must not reach time() - x"


def test_lines_table_names_every_column(dashboard: dict[str, Any]) -> None:
    panel = _panels_by_title(dashboard)["Service level by line in range"]
    assert panel["type"] == "table"
    refs = [t["refId"] for t in panel["targets"]]
    assert all(t["format"] == "table" and t["instant"] for t in panel["targets"])
    assert all(t["expr"].startswith("sum by (line) (") for t in panel["targets"])
    headers = {
        o["matcher"]["options"]: {p["id"]: p.get("value") for p in o["properties"]}
        for o in panel["fieldConfig"]["overrides"]
    }
    assert set(headers) == {f"Value #{ref}" for ref in refs}
    assert [headers[f"Value #{ref}"]["displayName"] for ref in refs] == [
        "Offered",
        "Answered in target",
        "Service level",
        "Abandoned",
        "Average speed of answer",
        "Callbacks pending",
    ]
    assert [t["id"] for t in panel["transformations"]] == ["merge", "organize"]


def test_busy_hours_count_each_clock_hour(dashboard: dict[str, Any]) -> None:
    panel = _panels_by_title(dashboard)["Busy hours (last 7 days, UTC)"]
    assert panel["timeFrom"] == "7d"
    assert [t["legendFormat"] for t in panel["targets"]] == [f"{h:02d}" for h in range(24)]
    for hour, target in enumerate(panel["targets"]):
        expr = target["expr"]
        assert "sipgate_calls_offered_total" in expr
        # The increase over an hour is taken at the hour's end: hour() is one more.
        assert f" and on() hour() == {(hour + 1) % 24})[$__range:1h])" in expr, expr
        assert expr.endswith(" or vector(0)")


# --- tests of the linter itself: it must catch what it claims to catch ------------------------


def _lint_one(expr: str, *, instant: bool = False, kind: str = "timeseries") -> Problems:
    panel = {"title": "probe", "type": kind}
    target = {"refId": "A", "expr": expr, "instant": instant, "range": not instant}
    t = Target(panel, target)
    return [p for check in TARGET_CHECKS for p in check(t)]


GOOD = (
    'sum by (direction) (rate(sipgate_calls_total{job="$job", instance=~"$instance", '
    'direction=~"$direction", line=~"$line"}[$__rate_interval]))'
)
HOURLY = (
    'sum_over_time((sum (increase(sipgate_calls_offered_total{job="$job", instance=~"$instance", '
    'direction="in", line=~"$line"}[1h])) and on() hour() == 10)[$__range:1h]) or vector(0)'
)
TEAM = (
    'sum by (team) (rate(sipgate_team_calls_answered_total{job="$job", instance=~"$instance", '
    'team=~"$team"}[$__rate_interval]))'
)


@pytest.mark.parametrize(
    ("expr", "instant", "expected"),
    [
        (GOOD, False, None),
        (GOOD.replace("$__rate_interval", "5m"), False, "must be [$__rate_interval]"),
        (GOOD.replace("rate(", "irate("), False, "not irate()"),
        (GOOD.replace("$__rate_interval", "$__range"), True, "only in increase()"),
        (GOOD.replace("rate(", "increase(").replace("$__rate_interval", "$__range"), True, None),
        (
            GOOD.replace("rate(", "increase(").replace("$__rate_interval", "$__range"),
            False,
            "only in increase() of an instant",
        ),
        (
            GOOD.replace("rate(", "(").replace("[$__rate_interval]", ""),
            False,
            "must be wrapped in rate()/increase()",
        ),
        (GOOD.replace("sum by (direction) ", ""), False, "is not aggregated"),
        (GOOD.replace("by (direction)", "without (job)"), False, "not `without"),
        (GOOD.replace("by (direction)", "by (direktion)"), False, "unknown labels"),
        (GOOD.replace("sipgate_calls_total", "sipgate_call_total"), False, "not a metric"),
        (GOOD.replace('direction=~"$direction"', 'direction="inbound"'), False, "no value"),
        (GOOD.replace(', instance=~"$instance"', ""), False, 'needs instance=~"$instance"'),
        (GOOD.replace(', line=~"$line"', ""), False, 'needs line=~"$line"'),
        (GOOD.replace('line=~"$line"', 'line="support"'), False, 'needs line=~"$line"'),
        (GOOD.replace('line=~"$line"', 'line=~".*"'), False, None),
        (GOOD.replace("by (direction)", "by (line)"), False, None),
        (TEAM, False, None),
        (TEAM.replace(', team=~"$team"', ""), False, 'needs team=~"$team"'),
        (TEAM.replace('team=~"$team"', 'team=~".*"'), False, None),
        (TEAM.replace("by (team)", "by (line)"), False, "unknown labels"),
        (TEAM.replace("team_calls_answered", "teams_calls_answered"), False, "not a metric"),
        (
            'sum by (outcome) (increase(sipgate_config_reloads_total{job="$job", '
            'instance=~"$instance", outcome="answered"}[$__rate_interval]))',
            False,
            "no value ['answered']",
        ),
        (
            'sum by (label) (rate(sipgate_label_values_overflow_total{job="$job", '
            'instance=~"$instance", label="caller"}[$__rate_interval]))',
            False,
            "no value ['caller']",
        ),
        (
            "histogram_quantile(0.9, sum by (outcome) (rate(sipgate_call_wait_seconds_bucket{"
            'job="$job", instance=~"$instance", direction=~"$direction"}[$__rate_interval])))',
            False,
            "summed by (le",
        ),
        (GOOD.replace('direction=~"$direction"', 'direction="in"'), False, None),
        (GOOD.replace('direction=~"$direction"', 'direction="out"'), False, "needs direction"),
        (HOURLY, True, None),
        (HOURLY, False, "only in sum_over_time() of an instant query"),
        (HOURLY.replace("sum_over_time", "max_over_time"), True, "only in sum_over_time()"),
        (HOURLY.replace("[1h])", "[5m])"), True, "must be its step"),
        (HOURLY.replace("[1h])", "[$__rate_interval])"), True, "must be its step"),
        (HOURLY.replace("[$__range:1h]", "[1d:1h]"), True, "not the direct argument"),
    ],
)
def test_linter_catches(expr: str, instant: bool, expected: str | None) -> None:
    problems = _lint_one(expr, instant=instant)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_linter_checks_panels() -> None:
    panel: dict[str, Any] = {
        "title": "probe",
        "type": "stat",
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "targets": [{"refId": "A", "expr": "up", "datasource": {"uid": "x"}}],
    }
    problems = "\n".join(check_panel(panel))
    for expected in ("panel 'probe': datasource", "no unit", "no description", "instant query"):
        assert expected in problems


# --- the helper for end-to-end tests -----------------------------------------------------------


def test_substitute_forms() -> None:
    variables = {"job": "sipgate", "direction": ".*", "__rate_interval": "1m"}
    expr = 'x{job="$job", direction=~"${direction:regex}"}[${__rate_interval}]'
    assert substitute(expr, variables) == 'x{job="sipgate", direction=~".*"}[1m]'
    with pytest.raises(UnknownVariableError, match=r"\$nope"):
        substitute('x{a="$nope"}', variables)


def test_panel_queries_are_fully_substituted() -> None:
    queries = panel_queries({"instance": "127.0.0.1:9850"})
    assert len(queries) >= 20
    assert all("$" not in q.expr for q in queries), [str(q) for q in queries if "$" in q.expr]
    with_metrics = [q for q in queries if selectors(q.raw_expr)]
    assert all('instance=~"127.0.0.1:9850"' in q.expr for q in with_metrics)
    assert TEST_VARIABLES["job"] == "sipgate"


# --- every query against a real Prometheus -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
    return body


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start an empty Prometheus on a free loopback port; yield its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus binary not found: apt-get install -y prometheus (Debian package)")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n", encoding="utf-8")
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                output = (workdir / "prometheus.log").read_text(errors="replace")
                pytest.fail(f"prometheus did not become ready on {url}:\n{output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ready(url: str) -> bool:
    try:
        return _get(f"{url}/-/ready", timeout=1)[0] == 200
    except OSError:
        return False


def test_every_query_is_valid_promql(prometheus: str) -> None:
    now = time.time()
    failures = []
    for query in panel_queries():
        if query.instant:
            body = _post(f"{prometheus}/api/v1/query", {"query": query.expr, "time": f"{now}"})
        else:
            form = {"query": query.expr, "start": f"{now - 3600}", "end": f"{now}", "step": "15"}
            body = _post(f"{prometheus}/api/v1/query_range", form)
        if body.get("status") != "success":
            failures.append(f"{query}\n    -> {body.get('errorType')}: {body.get('error')}")
    assert not failures, "\n".join(failures)
