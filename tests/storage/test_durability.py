"""Durable state against real exporter processes: load, kill -9, restarts, bad state files."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from prometheus_client.samples import Sample

from tests.http_helpers import (
    DIRECTIONS,
    EVENTS,
    OUTCOMES,
    answer,
    assert_invariant,
    fetch,
    free_port,
    hangup,
    new_call,
    post_webhook,
    total,
    value,
    wait_for,
)
from tests.programs import EXPORTER, SWEEP_SLACK, Program, clean_env, launch

# The webhook signature check is on by default; these tests post unsigned events.
UNSIGNED: Final = "--webhook.verify-signature=false"
# Keeps the journal, not a snapshot, carrying the state into a restart after kill -9.
NO_SNAPSHOTS: Final = "--state.snapshot-interval=1h"


# --- Starting and stopping exporters ------------------------------------------------------------


@dataclass
class Launcher:
    """Starts exporters on free ports, each logging to its own file; kills them all at the end."""

    logs: Path
    programs: list[Program] = field(default_factory=list)

    def _args(self, port: int, state: Path | None, flags: tuple[str, ...]) -> list[str]:
        return [
            *EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--state.path={'' if state is None else state}",
            UNSIGNED,
            *flags,
        ]

    def start(self, state: Path | None, *flags: str, cwd: Path | None = None) -> Program:
        """An exporter on `state` (None: persistence off), ready to serve."""
        port = free_port()
        log = self.logs / f"exporter-{len(self.programs)}.log"
        program = launch(self._args(port, state, flags), port, log, cwd=cwd)
        self.programs.append(program)
        program.wait_ready()
        return program

    def fail(self, state: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        """Run an exporter that is expected to exit by itself."""
        return subprocess.run(
            self._args(free_port(), state, flags),
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
            check=False,
        )

    def kill_all(self) -> None:
        for program in self.programs:
            if program.process.poll() is None:
                program.process.kill()
            program.process.wait(timeout=10)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    logs = tmp_path / "logs"
    logs.mkdir()
    launched = Launcher(logs)
    try:
        yield launched
    finally:
        launched.kill_all()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """The state file of the exporters under test."""
    return tmp_path / "state.db"


def stop(program: Program) -> None:
    """SIGTERM, and a clean exit."""
    program.process.send_signal(signal.SIGTERM)
    assert program.process.wait(timeout=20) == 0, program.stderr
    assert "Traceback" not in program.stderr


def crash(program: Program) -> None:
    """kill -9: no handler, no final snapshot."""
    program.process.send_signal(signal.SIGKILL)
    assert program.process.wait(timeout=10) == -signal.SIGKILL


def replayed_records(program: Program) -> int:
    """How many journal records the exporter replayed at start, from its log line."""

    def replay_line() -> str | None:
        lines = program.stderr.splitlines()
        return next((line for line in lines if "journal records replayed" in line), None)

    # Log lines are written in batches, a moment after the exporter is ready.
    line = wait_for(replay_line, timeout=5)
    return int(line.split(" journal records replayed")[0].rsplit(" ", 1)[1])


# --- Load: many connections, every acknowledged event tallied -----------------------------------


@dataclass(frozen=True)
class Planned:
    """One webhook request of the load and the statistics key it counts under."""

    event: str
    direction: str
    cause: str
    body: bytes


def plan_call(call_id: str, number: int) -> list[Planned]:
    """Alternating directions; three in four answered, the fourth missed (no answer event)."""
    direction = DIRECTIONS[number % 2]
    answered = number % 4 != 3
    cause = "normalClearing" if answered else "cancel"
    steps = [Planned("newCall", direction, "", new_call(call_id, direction=direction).encode())]
    if answered:
        steps.append(
            Planned("answer", direction, "", answer(call_id, direction=direction).encode())
        )
    steps.append(
        Planned("hangup", direction, cause, hangup(call_id, cause, direction=direction).encode())
    )
    return steps


OUTCOME_OF_CAUSE: Final = {"normalClearing": "answered", "cancel": "missed"}


@dataclass
class Tally:
    """What one worker sent: attempted (written to the socket) and acknowledged (got a 200)."""

    attempted: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    acked: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    acked_total: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    broken: bool = False

    def merge(self, other: Tally) -> None:
        self.attempted += other.attempted
        self.acked += other.acked
        self.acked_total += other.acked_total
        self.refused += other.refused
        self.broken = self.broken or other.broken

    def count(self, which: str, event: str, direction: str | None = None) -> int:
        tally = self.acked if which == "acked" else self.attempted
        return sum(
            n for (name, way, _), n in tally.items() if name == event and direction in (None, way)
        )

    def hangups(self, which: str, direction: str, cause: str) -> int:
        tally = self.acked if which == "acked" else self.attempted
        return tally[("hangup", direction, cause)]


def send_calls(port: int, call_ids: range, prefix: str, tally: Tally) -> None:
    """Place calls on one kept-alive connection; stop at the first failure, as sipgate would."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for number in call_ids:
            for step in plan_call(f"{prefix}-{number}", number):
                key = (step.event, step.direction, step.cause)
                tally.attempted[key] += 1
                try:
                    status = post_webhook(connection, step.body)
                except (OSError, http.client.HTTPException):
                    tally.broken = True
                    return
                if status != 200:
                    tally.refused[status] += 1
                    return
                tally.acked[key] += 1
                tally.acked_total += 1
    finally:
        connection.close()


class Load:
    """Calls spread over `workers` threads, each with its own connection."""

    def __init__(self, port: int, calls: int, workers: int, prefix: str) -> None:
        self.tallies = [Tally() for _ in range(workers)]
        self.threads = [
            threading.Thread(
                target=send_calls,
                args=(port, range(worker, calls, workers), prefix, tally),
                name=f"load-{worker}",
            )
            for worker, tally in enumerate(self.tallies)
        ]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def acked(self) -> int:
        return sum(tally.acked_total for tally in self.tallies)

    def join(self, timeout: float = 60) -> Tally:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads), "load did not finish"
        result = Tally()
        for tally in self.tallies:
            result.merge(tally)
        return result


def assert_counted(samples: list[Sample], tally: Tally, before: list[Sample] | None = None) -> None:
    """Each acknowledged event counted once: acknowledged <= counted <= attempted.

    With `before`, counts are taken as increases over those samples.
    """

    def counted(name: str, **labels: str) -> float:
        base = value(before, name, **labels) if before is not None else 0.0
        return value(samples, name, **labels) - base

    for direction in DIRECTIONS:
        calls = counted("sipgate_calls_total", direction=direction)
        low, high = (
            tally.count("acked", "newCall", direction),
            tally.count("attempted", "newCall", direction),
        )
        assert low <= calls <= high, f"{direction}: calls {calls} not in [{low}, {high}]"
        for cause, outcome in OUTCOME_OF_CAUSE.items():
            low = tally.hangups("acked", direction, cause)
            high = tally.hangups("attempted", direction, cause)
            hangups = counted("sipgate_hangups_total", direction=direction, cause=cause)
            assert low <= hangups <= high, f"{direction} {cause}: {hangups} not in [{low}, {high}]"
            ended = counted("sipgate_calls_ended_total", direction=direction, outcome=outcome)
            assert low <= ended <= high, f"{direction} {outcome}: {ended} not in [{low}, {high}]"
            waits = counted("sipgate_call_wait_seconds_count", direction=direction, outcome=outcome)
            assert waits == ended, f"{direction} {outcome}: {waits} waits, {ended} calls"
        answered = counted("sipgate_calls_ended_total", direction=direction, outcome="answered")
        talks = counted(
            "sipgate_call_duration_seconds_count", direction=direction, answered_by="person"
        )
        assert talks == answered, f"{direction}: {talks} durations, {answered} answered calls"
        for outcome in set(OUTCOMES) - set(OUTCOME_OF_CAUSE.values()):
            ended = counted("sipgate_calls_ended_total", direction=direction, outcome=outcome)
            assert ended == 0, f"{direction} {outcome}: {ended}"
    for event in ("newCall", "answer", "hangup"):
        requests = counted("sipgate_webhook_requests_total", event=event, code="200")
        low, high = tally.count("acked", event), tally.count("attempted", event)
        assert low <= requests <= high, f"{event} requests {requests} not in [{low}, {high}]"
    for event in EVENTS:
        assert counted("sipgate_events_unmatched_total", event=event) == 0, event
    assert total(samples, "sipgate_webhook_rejected_requests_total") == 0
    assert_invariant(samples)


LOAD_CALLS: Final = 7300  # about 20,000 requests: 2.75 per call
LOAD_WORKERS: Final = 24


def test_load_counts_every_acknowledged_event_exactly_once(launcher: Launcher, state: Path) -> None:
    program = launcher.start(state, "--log.level=warn", "--web.threads=8")

    tally = Load(program.port, LOAD_CALLS, LOAD_WORKERS, "load").start().join(timeout=120)

    assert not tally.refused, tally.refused
    assert not tally.broken, "a connection failed"
    assert tally.acked == tally.attempted
    assert tally.acked_total >= 20_000
    samples = program.samples()
    assert_counted(samples, tally)
    assert total(samples, "sipgate_calls_total") == LOAD_CALLS
    assert total(samples, "sipgate_calls_active") == 0
    assert total(samples, "sipgate_webhook_requests_total") == tally.acked_total


KILL_AFTER: Final = 3000
SNAPSHOTS: Final = {
    "journal-only": NO_SNAPSHOTS,
    "with-snapshots": "--state.snapshot-interval=1s",
}


def has_snapshot(state: Path) -> bool:
    """Whether the running exporter has written a snapshot yet (WAL lets this read alongside)."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return bool(db.execute("SELECT count(*) FROM snapshot").fetchone()[0])


@pytest.mark.parametrize("snapshots", SNAPSHOTS.keys())
def test_kill_9_under_load_keeps_every_acknowledged_event(
    launcher: Launcher, state: Path, snapshots: str
) -> None:
    program = launcher.start(state, "--log.level=warn", "--web.threads=8", SNAPSHOTS[snapshots])
    load = Load(program.port, LOAD_CALLS, LOAD_WORKERS, "crash").start()
    snapshotted = snapshots == "with-snapshots"
    wait_for(
        lambda: load.acked() >= KILL_AFTER and (not snapshotted or has_snapshot(state)),
        timeout=60,
        interval=0.005,
    )

    crash(program)
    tally = load.join()

    assert tally.broken, "no connection noticed the crash"
    assert not tally.refused, tally.refused
    attempted = sum(tally.attempted.values())
    assert KILL_AFTER <= tally.acked_total < attempted
    restarted = launcher.start(state, "--log.level=info")
    if not snapshotted:
        # Every event that got as far as the journal, and no sweeps: nothing ended by time.
        assert tally.acked_total <= replayed_records(restarted) <= attempted
    assert fetch(restarted.base + "/-/ready").status == 200
    samples = restarted.samples()
    assert_counted(samples, tally)
    # At most the call each worker had in progress is still open.
    assert total(samples, "sipgate_calls_active") <= LOAD_WORKERS

    # Counters continue from there: more load adds exactly what it was acknowledged.
    more = Load(restarted.port, 400, 8, "after").start().join()
    assert not more.broken
    assert not more.refused
    assert more.acked == more.attempted
    after = restarted.samples()
    assert_counted(after, more, before=samples)


# --- Calls in progress across a restart ---------------------------------------------------------

STOPS: Final = {"SIGTERM": stop, "SIGKILL": crash}
TOLERANCE: Final = 0.05


@pytest.fixture(params=STOPS.keys())
def how(request: pytest.FixtureRequest) -> str:
    """How the first exporter ends, once with each of STOPS."""
    return str(request.param)


def test_answered_call_keeps_its_talk_time_across_a_restart(
    launcher: Launcher, state: Path, how: str
) -> None:
    program = launcher.start(state, NO_SNAPSHOTS)
    program.post(new_call("A"))
    answer_sent = time.time()
    program.post(answer("A"))
    answer_acked = time.time()

    STOPS[how](program)
    restarted = launcher.start(state, NO_SNAPSHOTS)
    # A clean stop snapshots; after kill -9 the journal carries the call.
    assert (replayed_records(restarted) > 0) == (how == "SIGKILL")
    samples = restarted.samples()
    assert value(samples, "sipgate_calls_active", direction="in", state="talking") == 1
    hangup_sent = time.time()
    restarted.post(hangup("A"))
    hangup_acked = time.time()

    samples = restarted.samples()
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="answered") == 1
    assert value(samples, "sipgate_events_unmatched_total", event="hangup") == 0
    assert total(samples, "sipgate_calls_active") == 0
    labels = {"direction": "in", "answered_by": "person"}
    assert value(samples, "sipgate_call_duration_seconds_count", **labels) == 1
    talk = value(samples, "sipgate_call_duration_seconds_sum", **labels)
    assert hangup_sent - answer_acked - TOLERANCE <= talk <= hangup_acked - answer_sent + TOLERANCE
    assert_invariant(samples)


EXPIRE: Final = 2.0
GRACE: Final = 1.5


def test_expiry_and_forward_grace_run_across_a_restart(
    launcher: Launcher, state: Path, how: str
) -> None:
    flags = (NO_SNAPSHOTS, f"--calls.expire-after={EXPIRE:g}s", f"--calls.forward-grace={GRACE:g}s")
    program = launcher.start(state, *flags)
    rang = time.monotonic()
    program.post(new_call("R"))
    program.post(new_call("F"))
    program.post(hangup("F", cause="forwarded"))

    STOPS[how](program)
    restarted = launcher.start(state, *flags)

    def ended() -> list[Sample] | None:
        samples = restarted.samples()
        return samples if total(samples, "sipgate_calls_ended_total") == 2 else None

    samples = wait_for(ended, timeout=EXPIRE + SWEEP_SLACK + 5)
    assert time.monotonic() - rang >= EXPIRE
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="expired") == 1
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="forwarded") == 1
    assert value(samples, "sipgate_calls_total", direction="in") == 2
    assert total(samples, "sipgate_calls_active") == 0
    assert_invariant(samples)
    # Both ended calls are gone for good: a late hangup is unmatched.
    restarted.post(hangup("R", cause="cancel"))
    samples = restarted.samples()
    assert value(samples, "sipgate_events_unmatched_total", event="hangup") == 1
    assert total(samples, "sipgate_calls_ended_total") == 2


# --- Bad state files ----------------------------------------------------------------------------


def assert_refused(result: subprocess.CompletedProcess[str], state: Path) -> None:
    """A non-zero exit with one error line that names the file and the way out."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert str(state) in errors[0]
    assert "--state.reset" in errors[0]


GARBAGE: Final = bytes(range(256)) * 64


def test_garbage_state_file_is_refused_then_moved_aside_by_reset(
    launcher: Launcher, tmp_path: Path, state: Path
) -> None:
    state.write_bytes(GARBAGE)

    assert_refused(launcher.fail(state), state)
    assert state.read_bytes() == GARBAGE

    program = launcher.start(state, "--state.reset")
    moved = list(tmp_path.glob("state.db.*.old"))
    assert len(moved) == 1, moved
    assert moved[0].read_bytes() == GARBAGE
    assert total(program.samples(), "sipgate_calls_total") == 0
    program.post(new_call("A"))
    stop(program)
    # The fresh file is a working state file: the next start keeps the call.
    restarted = launcher.start(state)
    assert value(restarted.samples(), "sipgate_calls_total", direction="in") == 1


def test_truncated_state_file_is_refused_not_emptied(launcher: Launcher, state: Path) -> None:
    program = launcher.start(state)
    for number in range(200):
        program.post(new_call(f"T{number}"))
    stop(program)
    whole = state.read_bytes()
    half = whole[: len(whole) // 2]
    state.write_bytes(half)

    assert_refused(launcher.fail(state), state)
    assert state.read_bytes() == half


def test_second_exporter_on_the_same_state_file_is_refused(launcher: Launcher, state: Path) -> None:
    first = launcher.start(state)
    first.post(new_call("A"))

    result = launcher.fail(state)

    assert result.returncode != 0
    assert "in use" in result.stderr
    assert str(state) in result.stderr
    assert first.process.poll() is None
    first.post(new_call("B"))
    samples = first.samples()
    assert value(samples, "sipgate_calls_total", direction="in") == 2


def test_empty_state_path_turns_persistence_off(launcher: Launcher, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    program = launcher.start(None, cwd=cwd)
    program.post(new_call("A"))
    program.post(hangup("A", cause="cancel"))
    samples = program.samples()
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="missed") == 1
    assert_invariant(samples)
    stop(program)

    assert list(cwd.rglob("*")) == []
    assert "--state.path is empty" in program.stderr
    restarted = launcher.start(None, cwd=cwd)
    assert total(restarted.samples(), "sipgate_calls_total") == 0


# --- The open-call cap --------------------------------------------------------------------------

CAP: Final = 100
FLOOD: Final = 300
STATE_FILE_BOUND: Final = 512 * 1024


def snapshot_calls(state: Path) -> int:
    """How many open calls the state file's snapshot holds (read with the exporter stopped)."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        (data,) = db.execute("SELECT data FROM snapshot").fetchone()
    journals = list(state.parent.glob(state.name + ".journal*"))
    assert [path.stat().st_size for path in journals] == [0], "a clean stop leaves no journal"
    return len(json.loads(zlib.decompress(data))["calls"])


def test_flood_of_new_calls_is_capped_and_counted(launcher: Launcher, state: Path) -> None:
    program = launcher.start(state, f"--calls.max-open={CAP}", "--state.snapshot-interval=1s")
    connection = http.client.HTTPConnection("127.0.0.1", program.port, timeout=10)
    try:
        for number in range(FLOOD):
            body = new_call(f"F{number}", direction=DIRECTIONS[number % 2])
            assert post_webhook(connection, body) == 200
    finally:
        connection.close()

    samples = program.samples()
    assert total(samples, "sipgate_calls_active") == CAP
    assert value(samples, "sipgate_calls_evicted_total") == FLOOD - CAP
    assert total(samples, "sipgate_calls_ended_total", outcome="expired") == FLOOD - CAP
    assert total(samples, "sipgate_calls_total") == FLOOD
    assert_invariant(samples)
    stop(program)

    assert snapshot_calls(state) == CAP
    files = [state, *state.parent.glob(state.name + "-*")]
    assert sum(os.path.getsize(path) for path in files) < STATE_FILE_BOUND
    restarted = launcher.start(state, f"--calls.max-open={CAP}")
    samples = restarted.samples()
    assert total(samples, "sipgate_calls_active") == CAP
    assert value(samples, "sipgate_calls_evicted_total") == FLOOD - CAP
    assert_invariant(samples)


def test_reset_while_another_exporter_runs_leaves_its_file_alone(
    launcher: Launcher, tmp_path: Path, state: Path
) -> None:
    first = launcher.start(state)
    first.post(new_call("A"))

    result = launcher.fail(state, "--state.reset")

    assert result.returncode != 0
    assert "in use" in result.stderr
    assert list(tmp_path.glob("state.db*.old*")) == []
    stop(first)
    restarted = launcher.start(state)
    assert value(restarted.samples(), "sipgate_calls_total", direction="in") == 1
