"""Replicas behind a real haproxy: one stopped and started again mid-stream, nothing refused."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.haproxy import running_haproxy
from tests.http_helpers import fetch, free_port
from tests.postgres import postgres, state_url
from tests.programs import Program
from tests.replica_programs import (
    ReplicaPrograms,
    assert_same_statistics,
    planned_events,
    replica_programs,
)

__all__ = ["postgres", "replica_programs", "state_url"]

SEED = 32
CALLS = 120


def test_a_replica_restarted_behind_haproxy_loses_no_request(
    replica_programs: ReplicaPrograms, tmp_path: Path
) -> None:
    events = planned_events(CALLS, SEED)
    single = replica_programs.start(None)
    first, second = replica_programs.start("first"), replica_programs.start("second")
    port = free_port()
    stopped_at, started_at = len(events) // 3, len(events) * 2 // 3
    statuses = []
    replacement: Program | None = None
    with running_haproxy(tmp_path, port, [first.port, second.port]):
        for index, body in enumerate(events):
            if index == stopped_at:
                first.process.send_signal(signal.SIGTERM)  # an upgrade: stop, then start again
            if index == started_at:
                assert first.process.wait(timeout=10) == 0, first.stderr
                replacement = replica_programs.start("first", port=first.port, ready=False)
            statuses.append(fetch(f"http://127.0.0.1:{port}/webhook", body).status)
            assert fetch(single.base + "/webhook", body).status == 200
    assert statuses == [200] * len(events)
    assert replacement is not None
    replacement.wait_ready()

    assert_same_statistics(single, [replacement, second])
