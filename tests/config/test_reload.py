"""The configuration file in a running exporter: start, SIGHUP, POST /-/reload, --check-config."""

from __future__ import annotations

import logging
import signal
import subprocess
from pathlib import Path

import pytest

from exporter.config.reload import ConfigReloader
from tests.http_helpers import fetch, new_call, text_samples, value, wait_for
from tests.programs import EXPORTER, Program, Start, clean_env

LINES_V1 = 'lines:\n  "4915791234567": support\n'
LINES_V2 = 'lines:\n  "4915791234567": hotline\nteams:\n  Alice: frontdesk\n'


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sipgate-exporter.yml"
    path.write_text(LINES_V1, encoding="utf-8")
    return path


def reloads(program: Program, outcome: str) -> float:
    return value(
        text_samples(fetch(program.base + "/metrics").text),
        "sipgate_config_reloads_total",
        outcome=outcome,
    )


def line_of_calls(program: Program) -> set[str]:
    samples = text_samples(fetch(program.base + "/metrics").text)
    return {s.labels["line"] for s in samples if s.name == "sipgate_calls_total" and s.value}


def test_sighup_reloads_a_good_file_and_keeps_the_old_one_on_a_bad_file(
    start: Start,
    config: Path,
) -> None:
    program = start(f"--config.file={config}")
    program.post(new_call("A"))
    assert line_of_calls(program) == {"support"}

    config.write_text(LINES_V2, encoding="utf-8")
    program.process.send_signal(signal.SIGHUP)
    wait_for(lambda: reloads(program, "success") == 1 or None, timeout=5)
    program.post(new_call("B"))
    assert line_of_calls(program) == {"support", "hotline"}

    config.write_text("lines: [oops\n", encoding="utf-8")
    program.process.send_signal(signal.SIGHUP)
    wait_for(lambda: reloads(program, "failure") == 1 or None, timeout=5)
    program.post(new_call("C"))
    samples = text_samples(fetch(program.base + "/metrics").text)
    assert value(samples, "sipgate_calls_total", direction="in", line="hotline") == 2
    assert value(samples, "sipgate_config_last_reload_successful") == 0
    # Log lines are written in batches, a moment later.
    wait_for(lambda: "keeping the previous one" in program.stderr or None, timeout=5)
    assert program.process.poll() is None


def test_http_reload_needs_the_lifecycle_flag(
    start: Start,
    config: Path,
) -> None:
    closed = start(f"--config.file={config}")
    refused = fetch(closed.base + "/-/reload", body=b"")
    assert refused.status == 403
    assert "--web.enable-lifecycle" in refused.text

    program = start(f"--config.file={config}", "--web.enable-lifecycle")
    config.write_text(LINES_V2, encoding="utf-8")
    reply = fetch(program.base + "/-/reload", body=b"")
    assert reply.status == 200
    assert reloads(program, "success") == 1
    samples = text_samples(fetch(program.base + "/metrics").text)
    assert value(samples, "sipgate_team_calls_answered_total", team="frontdesk") == 0

    config.write_text("teams:\n  Alice: other\n", encoding="utf-8")
    failed = fetch(program.base + "/-/reload", body=b"")
    assert failed.status == 500
    assert "'other' is reserved" in failed.text
    assert reloads(program, "failure") == 1


def test_a_bad_file_at_start_stops_the_exporter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("teams:\n  Alice: [1]\n", encoding="utf-8")
    result = subprocess.run(
        [*EXPORTER, f"--config.file={bad}", "--state.path=", "--web.listen-address=127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 2
    assert f"{bad}:2: teams.Alice" in result.stderr


@pytest.mark.parametrize(("text", "status"), [(LINES_V2, 0), ("lines:\n  x: y\n", 1)])
def test_check_config_validates_and_exits(tmp_path: Path, text: str, status: int) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [*EXPORTER, "--check-config", f"--config.file={path}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == status
    output = result.stdout + result.stderr
    assert ("configuration OK" in output) == (status == 0)


# Three numbers on two lines, three people in two teams.
SHARED_NAMES = (
    "lines:\n"
    '  "4921100000001": support\n'
    '  "4921100000002": support\n'
    '  "4921100000003": {line: hotline, short_abandon: 2s}\n'
    "teams:\n"
    "  Alice: support\n"
    "  Bob: support\n"
    "  w3: sales\n"
)


def test_start_and_reload_logs_count_names_not_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sipgate-exporter.yml"
    path.write_text(SHARED_NAMES, encoding="utf-8")
    reloader = ConfigReloader(path, lambda _config: None)
    caplog.set_level(logging.INFO, logger="exporter.config.reload")

    reloader.load()
    reloader.reload()

    assert [record.getMessage() for record in caplog.records] == [
        f"configuration loaded from {path}: 2 lines, 2 teams, per-user statistics off",
        f"configuration reloaded from {path}: 2 lines, 2 teams, per-user statistics off",
    ]
