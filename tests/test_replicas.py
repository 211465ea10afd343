"""Two exporter processes sharing PostgreSQL: a replica killed and replaced loses nothing."""

from __future__ import annotations

import random
import threading
import time
from functools import partial

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
    # The replacement starts soon after the kill; its start takes a second or two, in which
    # the other replica takes every event.
    killed_at, started_at = len(events) // 3, len(events) // 3 + 20
    replacement: Program | None = None
    replaced = threading.Event()
    for index, body in enumerate(events):
        if index == killed_at:
            first.process.kill()  # SIGKILL, between two acknowledged events
            first.process.wait(timeout=10)
        if index == started_at:
            replacement = replica_programs.start("first", ready=False)  # no local files
            # Watched aside: a pause of the stream would give its calls waits of about the
            # watch's timeout, which the two sides could count in different buckets.
            watch = partial(wait_until_ready, replacement, replaced)
            threading.Thread(target=watch, name="watch", daemon=True).start()
        if replacement is not None and replaced.is_set():
            first = replacement
        alive = [program for program in (first, second) if program.process.poll() is None]
        usable = [program for program in alive if fetch_ready(program)]
        post(usable[0] if choose() < 0.5 else usable[-1], body)
        post(single, body)
    assert replaced.wait(30), "the replacement never became ready"
    assert replacement is not None
    first = replacement

    assert_same_statistics(single, [first, second])
    assert_invariant([*first.samples(), *second.samples()])


def wait_until_ready(program: Program, ready: threading.Event) -> None:
    """Set `ready` once `program` answers /-/ready with 200, within 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and program.process.poll() is None:
        if fetch_ready(program):
            ready.set()
            return
        time.sleep(0.05)


def fetch_ready(program: Program) -> bool:
    """Whether `program` answers /-/ready with 200 now."""
    if program.process.poll() is not None:
        return False
    try:
        return fetch(program.base + "/-/ready", timeout=1.0).status == 200
    except OSError:
        return False
