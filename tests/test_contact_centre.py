"""Service level, the longest wait and callbacks over HTTP, on a real exporter process."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.http_helpers import CALLER, answer, hangup, new_call, value
from tests.programs import Program, Start

SHORT_TARGETS = ("--calls.service-level-target=1s", "--calls.short-abandon=500ms")
LINE_NUMBER = "4921100000001"


def metric(program: Program, name: str, **labels: str) -> float:
    return value(program.samples(), name, **labels)


def test_answers_and_abandons_are_counted_against_the_flags_thresholds(start: Start) -> None:
    program = start(*SHORT_TARGETS)
    program.post(new_call("fast"))
    program.post(new_call("slow"))
    program.post(new_call("short"))
    program.post(new_call("abandoned"))
    time.sleep(0.2)
    program.post(answer("fast"))
    program.post(hangup("short", "cancel"))
    time.sleep(1.0)
    program.post(answer("slow"))
    program.post(hangup("abandoned", "cancel"))
    for call_id in ("fast", "slow"):
        program.post(hangup(call_id))

    counted = {
        name: metric(program, f"sipgate_calls_{name}_total", direction="in")
        for name in ("offered", "answered_in_target", "abandoned", "short_abandoned")
    }
    assert counted == {
        "offered": 3,
        "answered_in_target": 1,
        "abandoned": 1,
        "short_abandoned": 1,
    }


def test_the_longest_wait_starts_with_the_oldest_ringing_call_and_ends_at_zero(
    start: Start,
) -> None:
    program = start()
    before = time.time()
    program.post(new_call("A"))
    program.post(new_call("B"))
    since = metric(program, "sipgate_calls_ringing_since_timestamp_seconds", direction="in")
    assert before - 1 <= since <= time.time() + 1

    program.post(hangup("A", "cancel"))
    program.post(answer("B"))
    assert metric(program, "sipgate_calls_ringing_since_timestamp_seconds", direction="in") == 0


def test_a_missed_caller_stays_owed_across_a_restart_until_called_back(
    start: Start, tmp_path: Path
) -> None:
    state = f"--state.path={tmp_path / 'kept.db'}"
    first = start(state)
    first.post(new_call("missed", users=()))
    first.post(hangup("missed", "cancel"))
    first.post(new_call("anonymous", caller="anonymous"))
    first.post(hangup("anonymous", "cancel"))
    assert metric(first, "sipgate_callbacks_pending") == 1
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0

    second = start(state)
    assert metric(second, "sipgate_callbacks_pending") == 1
    second.post(new_call("back", "out", caller=LINE_NUMBER, callee=CALLER))
    second.post(answer("back", "out"))
    second.post(hangup("back", direction="out"))

    samples = second.samples()
    assert value(samples, "sipgate_callbacks_pending") == 0
    assert value(samples, "sipgate_callbacks_total", result="called_back") == 1
    assert value(samples, "sipgate_callback_delay_seconds_count") == 1
    assert CALLER not in (tmp_path / "kept.db").read_bytes().decode("latin-1")
