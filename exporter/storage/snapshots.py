"""Tie a CallTracker to its state file: restore at start, journal every event, snapshot."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from exporter.domain.events import (
    Limits,
    parse_event,
)
from exporter.domain.tracker import CallTracker
from exporter.errors import InvalidEventError
from exporter.gc_pause import collector_paused
from exporter.storage.sqlite import ERROR, EVENT, REJECTION, SWEEP, StateStore

log = logging.getLogger(__name__)

# Journaled events were accepted once; replay them even if the limits were lowered since.
_REPLAY_LIMITS: Final = Limits(max_fields=1 << 30, max_users=1 << 30)
# Snapshot early when the journal grows this long, so that a restart replays little.
MAX_JOURNAL: Final = 20_000


def open_durable(tracker: CallTracker, path: Path, sync: str, reset: bool) -> StateStore:
    """Restore `tracker` from `path` and journal to it from now on; raise StateError."""
    started = time.monotonic()
    store = StateStore(path, sync, reset)
    if store.moved_aside is not None:
        log.warning("moved state file %s aside to %s; starting fresh", path, store.moved_aside)
    try:
        with collector_paused():
            replayed = replay(tracker, store)
    except BaseException:
        store.close()
        raise
    tracker.journal = store
    log.info(
        "state %s: %d calls in progress, %d journal records replayed, in %.2fs",
        path,
        tracker.open_calls,
        replayed,
        time.monotonic() - started,
    )
    return store


def replay(tracker: CallTracker, store: StateStore) -> int:
    """Load the snapshot and apply the journal after it; return how many records were applied."""
    snapshot, entries = store.load()
    if snapshot is not None:
        tracker.restore_state(snapshot)
    replayed = 0
    for entry in entries:
        if entry.kind == SWEEP:
            tracker.sweep(entry.at)
        elif entry.kind == REJECTION and entry.body is not None:
            reason, code = entry.body.decode().split(" ")
            tracker.record_rejection(reason, int(code))
        elif entry.kind == ERROR and entry.body is not None:
            tracker.record_error(entry.body.decode())
        elif entry.kind == EVENT and entry.body is not None:
            try:
                event = parse_event(entry.body, _REPLAY_LIMITS)
            except InvalidEventError as error:
                log.warning("skipped a journaled event that no longer parses: %s", error)
                continue
            tracker.handle(event, entry.at)
        replayed += 1
    return replayed


class Snapshotter:
    """Writes the tracker's state every `interval` seconds, or sooner when the journal is long."""

    def __init__(
        self,
        tracker: CallTracker,
        store: StateStore,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tracker = tracker
        self._store = store
        self._interval = interval
        self._clock = clock
        self._last = clock()

    def maybe_snapshot(self) -> None:
        """Snapshot if it is time to; move the write-ahead log into the database in any case."""
        due = self._clock() - self._last >= self._interval
        if due or self._store.journal_length >= MAX_JOURNAL:
            self.snapshot()
        self._store.checkpoint()

    def snapshot(self, force: bool = False) -> None:
        """Write the whole state now, unless nothing was journaled since the last time."""
        self._last = self._clock()
        if self._store.journal_length == 0 and not force:
            return
        state, position = self._tracker.export_state()
        self._store.save_snapshot(state, position)
