"""In-process costs with many open calls: the expiry sweep, and a snapshot of the state."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.stats import median
from exporter.call_log import log_calls_ended
from exporter.config.flags import Config
from exporter.domain.calls import EndedCall
from exporter.domain.events import NewCall
from exporter.domain.tracker import CallTracker
from exporter.logs import QueuedStreamHandler, formatter
from exporter.metrics import new_statistics
from exporter.storage.sqlite import SqliteStore

START: Final = 1_800_000_000.0
# The exporter's own defaults, so that the bench measures what users run.
DEFAULTS: Final = Config()
IDLE_SWEEPS: Final = 200


@dataclass
class Expiry:
    """Seconds per repetition: sweeps that end nothing / everything, logging, snapshots."""

    nothing: list[float]
    everything: list[float]
    logging: list[float]
    snapshot_lock: list[float]
    snapshot_total: list[float]


def open_tracker(open_calls: int, rang_at: float = START) -> CallTracker:
    """A tracker with the exporter's defaults and `open_calls` calls that rang at `rang_at`."""
    tracker = CallTracker(new_statistics(), DEFAULTS.forward_grace, DEFAULTS.expire_after)
    for number in range(open_calls):
        tracker.handle(NewCall(f"open-{number}", "in", users=("Alice",)), rang_at)
    return tracker


def measure(workdir: Path, open_calls: int, repetitions: int) -> Expiry:
    """Time the sweeps, the exporter's log line per ended call, and a snapshot."""
    result = Expiry([], [], [], [], [])
    for number in range(repetitions):
        tracker = open_tracker(open_calls)
        locked, total = _snapshot(tracker, workdir / f"snapshot-{number}.db")
        result.snapshot_lock.append(locked)
        result.snapshot_total.append(total)
        result.nothing.append(_idle_sweep(tracker))
        started = time.perf_counter()
        ended = tracker.sweep(START + DEFAULTS.expire_after + 1.0)
        result.everything.append(time.perf_counter() - started)
        if len(ended) != open_calls:
            raise RuntimeError(f"the sweep ended {len(ended)} of {open_calls} calls")
        result.logging.append(_log_seconds(ended))
    return result


def _idle_sweep(tracker: CallTracker) -> float:
    """Median seconds of a sweep that ends nothing: the one the sweeper runs every second."""
    times = []
    for _ in range(IDLE_SWEEPS):
        started = time.perf_counter()
        tracker.sweep(START + 60.0)
        times.append(time.perf_counter() - started)
    return median(times)


def _snapshot(tracker: CallTracker, path: Path) -> tuple[float, float]:
    """Seconds in export_state (under the store's lock), and in the whole snapshot."""
    store = SqliteStore(path)
    exported: list[float] = []

    def export() -> dict[str, Any]:
        begun = time.perf_counter()
        state = tracker.export_state()
        exported.append(time.perf_counter() - begun)
        return state

    try:
        started = time.perf_counter()
        store.snapshot(export)
        return exported[0], time.perf_counter() - started
    finally:
        store.close()


def _log_seconds(ended: tuple[EndedCall, ...]) -> float:
    """What logging an expired call costs: one info line each, queued, formatted and written.

    Lines are formatted in the logging thread; closing the handler waits until all are written.
    """
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(os.devnull, "w", encoding="utf-8") as sink:
        handler = QueuedStreamHandler(sink, formatter("text"))
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        try:
            started = time.perf_counter()
            log_calls_ended(ended)
            handler.close()
            return time.perf_counter() - started
        finally:
            handler.close()
            root.handlers[:], level = saved
            root.setLevel(level)
