"""The status page in this process: counts of the day, escaping, links and the settings it shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import webtest

from exporter.config.flags import Config
from exporter.domain.labels import LabelConfig
from exporter.service import status_settings
from exporter.web.status import StatusPage, is_loopback
from exporter.web.status_today import Today, midnight
from exporter.web.status_view import StatusSettings
from tests.conftest import FakeClock
from tests.http_helpers import CALLER, FORM, answer, new_call
from tests.in_process import InProcess, build

URL = "https://calls.example.com/webhook"
# 23:59:00 UTC, a minute before midnight.
EVENING = datetime(2027, 1, 15, 23, 59, tzinfo=UTC).timestamp()


def post(parts: InProcess, body: str, status: int = 200) -> None:
    webtest.TestApp(parts.app).post("/webhook", body, {"Content-Type": FORM}, status=status)


def page_of(
    parts: InProcess,
    settings: StatusSettings | None = None,
    not_ready: Callable[[], str | None] = lambda: None,
    reload_failed: Callable[[], bool] = lambda: False,
) -> str:
    settings = settings or StatusSettings()
    page = StatusPage(lambda: URL, parts.recorder, settings, not_ready, reload_failed)
    return str(page.get().body)


@pytest.fixture
def evening() -> FakeClock:
    return FakeClock(EVENING)


def test_today_counts_from_the_start_then_from_each_midnight(evening: FakeClock) -> None:
    parts = build(clock=evening)
    post(parts, new_call("1"))
    page = StatusPage(lambda: URL, parts.recorder, StatusSettings(), zone=UTC)
    post(parts, new_call("2"))
    post(parts, answer("2"))

    before = page.view(URL).figures
    assert (before.today["events"], before.today["calls:in"]) == (2, 1)
    assert before.since_start
    assert before.since == EVENING

    evening.advance(61)  # 00:00:01: the sweeper's tick begins the day
    page.tick()
    post(parts, new_call("3"))
    after = page.view(URL).figures
    assert (after.today["events"], after.today["calls:in"]) == (1, 1)
    assert not after.since_start
    assert after.since == EVENING + 60
    assert after.totals["events"] == 4


def test_a_day_read_late_starts_at_the_latest_midnight() -> None:
    zone = timezone(timedelta(hours=1))
    start = datetime(2027, 1, 15, 12, tzinfo=zone).timestamp()
    today = Today(start, Counter(events=5), zone)
    three_days_later = start + 3 * 86400

    assert today.counts(three_days_later, Counter(events=9)) == Counter()
    assert today.since == midnight(three_days_later, zone)
    assert datetime.fromtimestamp(today.since, zone).hour == 0
    assert today.counts(three_days_later + 5, Counter(events=10)) == Counter(events=1)


def test_a_tick_before_midnight_changes_nothing(evening: FakeClock) -> None:
    parts = build(clock=evening)
    page = StatusPage(lambda: URL, parts.recorder, StatusSettings(), zone=UTC)
    post(parts, new_call("1"))
    page.tick()
    assert page.view(URL).figures.today["events"] == 1


def test_names_are_escaped_and_numbers_never_shown(clock: FakeClock) -> None:
    parts = build(clock=clock)
    parts.tracker.configure_labels(
        LabelConfig(
            lines={"4921112345670": "<b>hot</b>line"},
            teams={"Alice": "front & back"},
            targets={"<b>hot</b>line": {"answer_within": 12.0}},
        )
    )
    post(parts, new_call("1", callee="4921112345670"))

    page = page_of(parts)

    assert "&lt;b&gt;hot&lt;/b&gt;line" in page
    assert "<b>hot" not in page
    assert "front &amp; back" in page
    assert "&lt;b&gt;hot&lt;/b&gt;line: answered within 12s" in page
    assert "4921112345670" not in page
    assert CALLER not in page


def test_refusals_and_failures_are_listed_by_reason(clock: FakeClock) -> None:
    parts = build(clock=clock)
    post(parts, "event=newCall", status=400)
    post(parts, "x" * 20_000, status=413)
    parts.recorder.requests.count("newCall", 500)

    page = page_of(parts)

    assert "not a sipgate event: missing_field (400)" in page
    assert "body too large (413)" in page
    assert "failed inside the exporter (500)" in page


def test_a_store_that_cannot_write_is_a_problem(clock: FakeClock) -> None:
    parts = build(clock=clock)
    page = page_of(parts, not_ready=lambda: "cannot write the journal: disk full")

    assert 'data-check="ready"' in page
    assert "Events are refused: cannot write the journal: disk full." in page
    assert 'data-level="danger"' in page


def test_a_failed_reload_is_a_warning(clock: FakeClock) -> None:
    parts = build(clock=clock)
    settings = StatusSettings(public_url=True, config_file="lines.yml")
    page = page_of(parts, settings, reload_failed=lambda: True)

    assert "The last reload of the configuration file failed" in page
    assert 'data-level="warning"' in page


def test_metrics_apart_grafana_and_state_are_named(clock: FakeClock) -> None:
    parts = build(clock=clock)
    settings = StatusSettings(
        metrics_address="127.0.0.1:9851", grafana_url="https://grafana.example.com/d/x?a=1&b=2"
    )
    page = page_of(parts, settings)

    assert "served on a separate address, <code>127.0.0.1:9851</code>" in page
    assert 'href="metrics"' not in page
    assert '<a href="https://grafana.example.com/d/x?a=1&amp;b=2">Grafana</a>' in page
    assert "not kept: <code>--state.path</code> is empty" in page
    assert ">Grafana<" not in page_of(parts, StatusSettings(grafana_url="javascript:alert(1)"))


def test_the_page_allows_only_its_own_style_and_script(clock: FakeClock) -> None:
    response = webtest.TestApp(build(clock=clock).app).get("/")

    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.7", False),
        ("stats.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_settings_come_from_the_flags() -> None:
    config = Config(
        listen_host="0.0.0.0",
        verify_signature=False,
        metrics_address=("::1", 9851),
        state_path=Path("data/x.db"),
        config_file=Path("lines.yml"),
        grafana_url="https://grafana.example.com/d/sipgate",
    )
    assert status_settings(config) == StatusSettings(
        verify_signature=False,
        allow_list=False,
        listen_host="0.0.0.0",
        public_url=False,
        state_path="data/x.db",
        metrics_address="[::1]:9851",
        grafana_url="https://grafana.example.com/d/sipgate",
        config_file="lines.yml",
    )
    assert status_settings(Config(state_path=None)).state_path is None


def test_a_shared_state_names_its_database_and_replica_never_the_password(
    clock: FakeClock,
) -> None:
    url = "postgresql://exporter:s3cret@db.example.com:6543/calls"
    settings = status_settings(Config(state_path=None, state_url=url, state_replica="left"))
    page = page_of(build(clock=clock), settings)

    assert (
        "shared in the PostgreSQL database <code>db.example.com:6543/calls, as replica left</code>"
        in page
    )
    assert "s3cret" not in page
