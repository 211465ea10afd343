"""A real exporter whose wall clock steps (libfaketime): waits, graces and expiry stay right."""

from __future__ import annotations

import glob
import signal
import time
from pathlib import Path

import pytest

from tests.http_helpers import answer, hangup, new_call, value, wait_for
from tests.programs import Program, Start

# Debian's libfaketime, the variant for threaded programs; .ci/run installs it.
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
HOUR = 3600


class SteppedClock:
    """The wall clock of processes started with `env`, stepped by rewriting a file."""

    def __init__(self, directory: Path) -> None:
        assert LIBFAKETIME, "libfaketime is missing: apt-get install faketime"
        self.file = directory / "faketime"
        self.step_to(0)

    @property
    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": LIBFAKETIME[0],
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            # Only the wall clock steps, as NTP or a resumed virtual machine steps it.
            "DONT_FAKE_MONOTONIC": "1",
        }

    def step_to(self, offset: int) -> None:
        """Set the wall clock `offset` seconds away from the real time."""
        self.file.write_text(f"{offset:+d}\n")


@pytest.fixture
def clock(tmp_path: Path) -> SteppedClock:
    return SteppedClock(tmp_path)


def wait_sum(program: Program) -> float:
    return value(
        program.samples(), "sipgate_call_wait_seconds_sum", direction="in", outcome="answered"
    )


def answered_after(program: Program, call_id: str) -> None:
    program.post(answer(call_id))
    program.post(hangup(call_id))


def test_a_step_back_records_the_wait_that_passed(start: Start, clock: SteppedClock) -> None:
    program = start(env=clock.env)
    program.post(new_call("A"))
    clock.step_to(-HOUR)
    time.sleep(1.0)
    answered_after(program, "A")

    assert 0.9 <= wait_sum(program) < 30


def test_a_step_forward_records_no_hour_long_wait(start: Start, clock: SteppedClock) -> None:
    program = start(env=clock.env)
    program.post(new_call("A"))
    clock.step_to(HOUR)
    answered_after(program, "A")

    assert 0 <= wait_sum(program) < 30


def test_exported_timestamps_follow_the_wall_clock_after_a_step(
    start: Start, clock: SteppedClock
) -> None:
    program = start(env=clock.env)
    program.post(new_call("A"))
    clock.step_to(HOUR)

    samples = program.samples()
    since = value(samples, "sipgate_calls_ringing_since_timestamp_seconds", direction="in")
    last = value(samples, "sipgate_webhook_last_received_timestamp_seconds")
    # Prometheus reads the stepped clock: a caller waiting seconds must not seem to wait an hour.
    stepped_now = time.time() + HOUR
    assert stepped_now - 30 < since <= stepped_now
    assert stepped_now - 30 < last <= stepped_now


def test_a_step_forward_expires_no_call(start: Start, clock: SteppedClock) -> None:
    program = start("--calls.expire-after=30m", env=clock.env)
    program.post(new_call("A"))
    clock.step_to(HOUR)
    time.sleep(2.5)  # two sweeps

    samples = program.samples()
    assert value(samples, "sipgate_calls_active", direction="in", state="ringing") == 1
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="expired") == 0


def test_a_step_back_delays_no_expiry(start: Start, clock: SteppedClock) -> None:
    # Flags of the `start` fixture: calls expire after 2 s without events.
    program = start(env=clock.env)
    program.post(new_call("A"))
    clock.step_to(-HOUR)
    program.post(new_call("B"))

    def both_expired() -> bool:
        samples = program.samples()
        return value(samples, "sipgate_calls_ended_total", direction="in", outcome="expired") == 2

    wait_for(both_expired, timeout=10)


def test_a_restart_behind_the_saved_state_counts_on_and_says_so(
    start: Start, clock: SteppedClock, tmp_path: Path
) -> None:
    state = f"--state.path={tmp_path / 'kept.db'}"
    first = start(state, "--calls.expire-after=1h", env=clock.env)
    first.post(new_call("A"))
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0

    clock.step_to(-HOUR)
    second = start(state, "--calls.expire-after=1h", env=clock.env)
    answered_after(second, "A")

    assert 0 <= wait_sum(second) < 30
    assert "behind the last saved event" in second.stderr
