"""The "sipgate.io call log" dashboard: its SQL, run on call records that replicas wrote."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import jsonschema
import psycopg
import yaml

from tests.dashboard_queries import REPO
from tests.http_helpers import answer, hangup, new_call
from tests.storage.shared_replicas import Replicas, replicas

__all__ = ["replicas"]

DASHBOARD = REPO / "grafana" / "dashboards" / "sipgate-call-log.json"
PROVISIONED = REPO / "grafana" / "provisioning" / "datasources" / "postgres.yml"
SCHEMA = REPO / "grafana" / "schema" / "dashboard.schema.json"
OWED_NUMBER = "4930111111"
CALLED_AGAIN = "4930222222"
FREQUENT = "4930333333"
# What Grafana puts in for $__timeFilter(column): the dashboard's range, here the last day.
_TIME_FILTER = re.compile(r"\$__timeFilter\((\w+)\)")


def panels() -> dict[str, dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return {panel["title"]: panel for panel in dashboard["panels"]}


def run_panel(state_url: str, title: str) -> list[dict[str, Any]]:
    """The rows the panel's query returns, as Grafana's datasource would run it."""
    [target] = panels()[title]["targets"]
    sql = _TIME_FILTER.sub(
        r"\1 BETWEEN now() - interval '1 day' AND now() + interval '1 minute'", target["rawSql"]
    )
    with psycopg.connect(state_url, autocommit=True) as connection:
        cursor = connection.execute(sql.encode())
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def test_the_dashboard_is_valid_and_reads_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert not [error.message for error in validator.iter_errors(dashboard)]
    [datasource] = yaml.safe_load(PROVISIONED.read_text(encoding="utf-8"))["datasources"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert target["datasource"] == {"type": datasource["type"], "uid": datasource["uid"]}
            assert target["format"] == "table"
    # Grafana reads it from its environment: the file holds no password.
    assert datasource["secureJsonData"]["password"] == "$POSTGRES_PASSWORD"  # noqa: S105


def test_every_panel_shows_the_calls_the_replicas_recorded(
    replicas: Replicas, state_url: str
) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    a.post(new_call("missed", "in", caller=OWED_NUMBER))
    time.sleep(0.2)
    b.post(hangup("missed", cause="cancel"))
    b.post(new_call("again-missed", "in", caller=CALLED_AGAIN))
    a.post(hangup("again-missed", cause="cancel"))
    a.post(new_call("again", "in", caller=CALLED_AGAIN))
    b.post(answer("again"))
    a.post(hangup("again"))
    for number in range(3):
        a.post(new_call(f"frequent-{number}", "in", caller=FREQUENT))
        b.post(answer(f"frequent-{number}"))
        b.post(hangup(f"frequent-{number}"))

    owed = run_panel(state_url, "Missed callers owed a callback")
    assert [(row["number to call"], row["last call"]) for row in owed] == [(OWED_NUMBER, "missed")]

    last = run_panel(state_url, "Last calls")
    assert len(last) == 6
    assert last[-1]["caller"] == OWED_NUMBER  # newest first
    assert {row["outcome"] for row in last} == {"missed", "answered"}

    waits = run_panel(state_url, "Longest waits today")
    assert waits[0]["caller"] == OWED_NUMBER
    assert waits[0]["wait"] >= 0.2
    assert [row["wait"] for row in waits] == sorted((row["wait"] for row in waits), reverse=True)

    frequent = run_panel(state_url, "Most frequent callers")
    assert [(row["caller"], row["calls"], row["not answered"]) for row in frequent] == [
        (FREQUENT, 3, 0),
        (CALLED_AGAIN, 2, 1),
        (OWED_NUMBER, 1, 1),
    ]
