"""Restart: time from process start to /-/ready with a big state file, against the baseline's."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.corpus import plan_connections
from bench.expiry import open_tracker
from bench.procs import launch_baseline, launch_exporter, wait_ready
from bench.scrape import sample_sum
from exporter.storage.sqlite import SqliteStore
from exporter.storage.store import EVENT, Entry

# Above the open calls plus those the journal opens, so that replay evicts none of them.
MAX_OPEN: Final = 1_000_000


@dataclass
class Restart:
    """Seconds to ready per repetition: baseline, exporter with no state, with the big state."""

    baseline: list[float]
    empty: list[float]
    loaded: list[float]
    open_calls: float


def build_state(path: Path, open_calls: int, journal: int) -> None:
    """A state file: a snapshot with `open_calls` open calls, then `journal` journaled events.

    The journal holds the bodies of whole planned calls, as the exporter writes them between
    snapshots; a restart loads the snapshot and replays all of it.
    """
    now = time.time()
    tracker = open_tracker(open_calls, rang_at=now)
    store = SqliteStore(path)
    try:
        store.snapshot(tracker.export_state)
        events = [event for lane in plan_connections(journal, 1) for event in lane][:journal]
        for event in events:
            store.record(Entry(EVENT, now, event.body), lambda: None)
    finally:
        store.close()


def measure(workdir: Path, state: Path, repetitions: int, threads: int) -> Restart:
    """Start the baseline, a fresh exporter and one on a copy of `state`, `repetitions` times."""
    result = Restart([], [], [], 0.0)
    for number in range(repetitions):
        baseline = launch_baseline(workdir, threads)
        try:
            result.baseline.append(wait_ready(baseline))
        finally:
            baseline.stop()
        result.empty.append(_exporter_ready(workdir, workdir / f"empty-{number}.db")[0])
        copy = workdir / f"restart-{number}.db"
        shutil.copyfile(state, copy)
        seconds, result.open_calls = _exporter_ready(workdir, copy)
        result.loaded.append(seconds)
    return result


def _exporter_ready(workdir: Path, state: Path) -> tuple[float, float]:
    """Seconds to ready and open calls of an exporter on `state`, otherwise with defaults."""
    exporter = launch_exporter(
        workdir, [f"--state.path={state}", f"--calls.max-open={MAX_OPEN}"], "restart"
    )
    try:
        seconds = wait_ready(exporter)
        open_calls = sample_sum(exporter.url, "sipgate_calls_active")
    finally:
        # Killed: a graceful stop would write a final snapshot nobody needs.
        exporter.stop(kill=True)
    return seconds, open_calls
