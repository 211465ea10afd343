"""Starting the exporter: what it logs, and what a start that fails or a try-out leaves behind."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.http_helpers import answer, free_port, hangup, new_call, total, value, wait_for
from tests.programs import EXPORTER, Program, Start, clean_env, error_line

CHECK_ON: Final = "--webhook.verify-signature=true"


def names(root: Path) -> list[str]:
    return sorted(str(found.relative_to(root)) for found in root.rglob("*"))


def run(*flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """An exporter expected to exit by itself, started in `cwd`."""
    return subprocess.run(
        [*EXPORTER, *flags],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        cwd=cwd,
        check=False,
    )


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of an exporter that exited with 1, without a traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def stop(program: Program) -> None:
    program.process.send_signal(signal.SIGTERM)
    assert program.process.wait(timeout=20) == 0, program.stderr


def logged(program: Program, text: str) -> str:
    """The first line of the log that holds `text` (lines are written a moment later)."""
    return wait_for(
        lambda: next((line for line in program.stderr.splitlines() if text in line), None), 5
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: the default --state.path, data/…, would be made in it."""
    path = tmp_path / "work"
    path.mkdir()
    return path


# --- A start that fails leaves nothing behind ---------------------------------------------------


def test_a_taken_port_leaves_no_state_behind(workdir: Path, taken_port: int) -> None:
    result = run(f"--web.listen-address=127.0.0.1:{taken_port}", cwd=workdir)

    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in one_error(result)
    assert names(workdir) == [], "no data/ directory, no state file, -wal, -shm, lock or journal"


def test_a_taken_metrics_port_leaves_no_state_behind(workdir: Path, taken_port: int) -> None:
    result = run(
        f"--web.listen-address=127.0.0.1:{free_port()}",
        f"--web.metrics-address=127.0.0.1:{taken_port}",
        cwd=workdir,
    )

    assert "Address already in use" in one_error(result)
    assert names(workdir) == []


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--config.file=../bad.yml"], "lines.0211: the key must be a sipgate number in E.164"),
        (["--config.file=../missing.yml"], "cannot read: No such file or directory"),
        (["--web.threads=0"], "--web.threads: invalid number '0'"),
        (["--web.thr=2"], "did you mean --web.threads?"),
    ],
)
def test_a_configuration_error_leaves_no_state_behind(
    workdir: Path, flags: list[str], expected: str
) -> None:
    (workdir.parent / "bad.yml").write_text('lines:\n  "0211": office\n', encoding="utf-8")

    result = run(f"--web.listen-address=127.0.0.1:{free_port()}", *flags, cwd=workdir)

    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert names(workdir) == []


def test_a_state_in_use_is_refused_and_left_as_it_is(start: Start, tmp_path: Path) -> None:
    state = tmp_path / "shared" / "state.db"
    first = start(f"--state.path={state}")
    first.post(new_call("A"))
    before = names(state.parent)

    result = run(
        f"--web.listen-address=127.0.0.1:{free_port()}", f"--state.path={state}", cwd=tmp_path
    )

    expected = f"state file {state} is in use by another exporter; give each exporter its own "
    assert one_error(result).endswith(expected + "--state.path")
    assert names(state.parent) == before
    assert first.process.poll() is None


# --- A try-out's statistics stay out of production ------------------------------------------------


def try_out(start: Start, state: Path) -> None:
    """The quick start's try-out: the signature check off, one hand-made call."""
    program = start(f"--state.path={state}", "--webhook.verify-signature=false")
    program.post(new_call("A"))
    stop(program)


def test_a_try_out_state_is_refused_once_the_check_is_on(start: Start, tmp_path: Path) -> None:
    state = tmp_path / "data" / "state.db"
    try_out(start, state)
    before = names(state.parent)

    result = run(
        f"--web.listen-address=127.0.0.1:{free_port()}",
        f"--state.path={state}",
        CHECK_ON,
        cwd=tmp_path,
    )

    line = one_error(result)
    assert f"state file {state} was begun with --webhook.verify-signature=false" in line
    assert "--state.reset" in line
    assert "--state.keep-unsigned" in line
    assert names(state.parent) == before


def test_reset_starts_production_from_zero(start: Start, tmp_path: Path) -> None:
    state = tmp_path / "data" / "state.db"
    try_out(start, state)

    production = start(f"--state.path={state}", CHECK_ON, "--state.reset")

    assert total(production.samples(), "sipgate_calls_total") == 0
    assert len(list(state.parent.glob("state.db.*.old"))) == 1
    stop(production)
    restarted = start(f"--state.path={state}", CHECK_ON)
    assert total(restarted.samples(), "sipgate_calls_total") == 0


def test_keep_unsigned_keeps_the_try_out_s_statistics(start: Start, tmp_path: Path) -> None:
    state = tmp_path / "data" / "state.db"
    try_out(start, state)

    production = start(f"--state.path={state}", CHECK_ON, "--state.keep-unsigned")

    assert value(production.samples(), "sipgate_calls_total", direction="in") == 1
    warning = logged(production, "WARNING")
    assert "its statistics are kept, as --state.keep-unsigned asks" in warning


# --- What the start says ------------------------------------------------------------------------


def test_the_start_names_the_configuration_and_what_the_state_held(
    start: Start, tmp_path: Path
) -> None:
    config = tmp_path / "sipgate-exporter.yml"
    config.write_text(
        'lines:\n  "4915791234567": support\n  "4915791234568": support\n', encoding="utf-8"
    )
    state = tmp_path / "state.db"
    first = start(f"--config.file={config}", f"--state.path={state}")
    assert logged(first, "state ").endswith(f"state {state} is new: statistics start from zero")
    for event in (new_call("A"), answer("A"), hangup("A"), new_call("B")):
        first.post(event)
    stop(first)

    second = start(f"--config.file={config}", f"--state.path={state}")

    assert logged(second, "configuration loaded").endswith(
        f"configuration loaded from {config}: 1 line, 0 teams, per-user statistics off"
    )
    assert f"state {state} restored: 2 calls counted so far, 1 in progress; " in logged(
        second, "restored"
    )


def test_version_prints_the_version_and_exits(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("sipgate-exporter ")
    assert names(tmp_path) == []


def test_check_config_names_what_the_file_sets_up(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text('lines:\n  "4921100000001": support\nteams:\n  Alice: support\n')
    result = run("--check-config", f"--config.file={config}", cwd=tmp_path)
    assert result.stdout.strip() == (
        f"configuration OK ({config}: 1 line, 1 team, per-user statistics off)"
    )


def test_a_bad_boolean_names_the_spellings(tmp_path: Path) -> None:
    line = error_line(run("--state.reset=maybe", cwd=tmp_path))
    assert line == (
        "sipgate-exporter: error: --state.reset: invalid value 'maybe' "
        "(use true or false; also yes/no, on/off, 1/0)"
    )
