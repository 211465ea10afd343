"""Exporter processes that share their state in PostgreSQL, each started in an empty directory."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import count
from pathlib import Path

import pytest
from prometheus_client.samples import Sample

from exporter.simulate.traffic import TrafficPlanner, TrafficProfile
from tests.http_helpers import free_port
from tests.programs import EXPORTER, SWEEP_SLACK, Program, launch

# The planner spaces calls by simulated time, which these tests ignore: events go out at once.
PROFILE = TrafficProfile(calls_per_minute=600.0)
# The forward grace of every exporter here; calls in it end at a sweep, about a second later.
GRACE = 2.0
SETTLE = GRACE + SWEEP_SLACK
# Series that measure time as it passed in one run, or describe the process rather than calls.
UNCOMPARED = (
    "_sum",
    "_created",
    "timestamp",
    "talk_seconds",
    "request_duration",
    "sipgate_state_write_errors",
    "build_info",
)


class ReplicaPrograms:
    """Starts replicas (and a single exporter to compare with) on free ports; kills them all
    at the end."""

    def __init__(self, root: Path, state_url: str, flags: Iterable[str]) -> None:
        self._root = root
        self._state_url = state_url
        self._flags = tuple(flags)
        self._numbers = count(1)
        self.programs: list[Program] = []

    def start(
        self, replica: str | None, *flags: str, port: int | None = None, ready: bool = True
    ) -> Program:
        """A replica named `replica`, in a new empty directory, on `port` or a free one; with
        `replica` None, an exporter that keeps its state nowhere."""
        number = next(self._numbers)
        directory = self._root / f"process-{number}"
        directory.mkdir()
        port = port or free_port()
        state = (
            [f"--state.url={self._state_url}", f"--state.replica={replica}"]
            if replica is not None
            else ["--state.path="]
        )
        args = [*EXPORTER, f"--web.listen-address=127.0.0.1:{port}", *state, *self._flags, *flags]
        program = launch(args, port, directory / "exporter.log", cwd=directory)
        self.programs.append(program)
        if ready:
            program.wait_ready()
        return program

    def stop_all(self) -> None:
        for program in self.programs:
            if program.process.poll() is None:
                program.process.kill()
            program.process.wait(timeout=10)


def planned_events(calls: int, seed: int) -> list[bytes]:
    """The bodies of `calls` planned calls of every pattern, in the order sipgate sends them."""
    planner = TrafficPlanner(PROFILE, seed)
    events = [
        event for _, call in zip(range(calls), planner, strict=False) for event in call.events
    ]
    return [event.body for event in sorted(events, key=lambda event: event.at)]


def call_statistics(
    samples: Iterable[Sample],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every call statistic by name and labels, summed over the exporters the samples came
    from; leaving out what measures elapsed time or the process."""
    sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
    for sample in samples:
        if not sample.name.startswith("sipgate_") or any(
            part in sample.name for part in UNCOMPARED
        ):
            continue
        sums[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return dict(sums)


@pytest.fixture
def replica_programs(tmp_path: Path, state_url: str) -> Iterator[ReplicaPrograms]:
    """Replicas on a new, empty database, with a forward grace of 2 s."""
    flags = (f"--calls.forward-grace={GRACE:g}s", "--webhook.verify-signature=false")
    programs = ReplicaPrograms(tmp_path, state_url, flags)
    yield programs
    programs.stop_all()


def differences(
    got: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, tuple[float, float]]:
    """The statistics that differ, as `name{labels}`: (got, expected)."""
    return {
        f"{name}{dict(labels)}": (got.get((name, labels), 0.0), expected.get((name, labels), 0.0))
        for name, labels in sorted(got.keys() | expected.keys())
        if got.get((name, labels), 0.0) != expected.get((name, labels), 0.0)
    }


def assert_same_statistics(single: Program, replicas: Sequence[Program]) -> None:
    """The call statistics summed over `replicas` equal `single`'s, once the forward graces
    of the last events ran out and were swept on every side."""
    time.sleep(SETTLE)
    summed = call_statistics(sample for replica in replicas for sample in replica.samples())
    different = differences(summed, call_statistics(single.samples()))
    assert not different, "\n".join(
        f"{key}: {got} summed over the replicas, {expected} on one exporter"
        for key, (got, expected) in different.items()
    )
