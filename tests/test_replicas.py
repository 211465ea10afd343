"""Two exporter processes sharing PostgreSQL: a replica killed and replaced loses nothing."""

from __future__ import annotations

import random

from tests.http_helpers import assert_invariant, fetch
from tests.postgres import postgres, state_url
from tests.programs import Program
from tests.replica_programs import (
    ReplicaPrograms,
    assert_same_statistics,
    planned_events,
    replica_programs,
)

__all__ = ["postgres", "replica_programs", "state_url"]

SEED = 16
CALLS = 150


def post(program: Program, body: bytes) -> None:
    reply = fetch(program.base + "/webhook", body)
    assert reply.status == 200, reply.text


def test_a_replica_killed_mid_stream_and_replaced_counts_every_event_once(
    replica_programs: ReplicaPrograms,
) -> None:
    events = planned_events(CALLS, SEED)
    single = replica_programs.start(None)
    first, second = replica_programs.start("first"), replica_programs.start("second")
    choose = random.Random(SEED).random  # noqa: S311 -- a reproducible spread, not a secret
    killed_at, started_at = len(events) // 2, len(events) * 2 // 3
    replacement: Program | None = None
    for index, body in enumerate(events):
        if index == killed_at:
            first.process.kill()  # SIGKILL, between two acknowledged events
            first.process.wait(timeout=10)
        if index == started_at:
            replacement = replica_programs.start("first", ready=False)  # no local files
        if replacement is not None and fetch_ready(replacement):
            first = replacement
        alive = [program for program in (first, second) if program.process.poll() is None]
        usable = [program for program in alive if fetch_ready(program)]
        post(usable[0] if choose() < 0.5 else usable[-1], body)
        post(single, body)
    assert first is replacement, "the replacement never became ready"

    assert_same_statistics(single, [first, second])
    assert_invariant([*first.samples(), *second.samples()])


def fetch_ready(program: Program) -> bool:
    """Whether `program` answers /-/ready with 200 now."""
    if program.process.poll() is not None:
        return False
    try:
        return fetch(program.base + "/-/ready", timeout=1.0).status == 200
    except OSError:
        return False
