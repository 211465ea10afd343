"""The embedded store: a journal of every change, and snapshots of the whole state in SQLite.

Every entry is written to the journal (exporter/storage/journal.py) before it is applied and
answered, so whatever sipgate got a 2xx for survives a crash. A snapshot of the whole state
replaces the journal up to its position now and then, which keeps restarts fast and the files
bounded.

What survives what: a journal record is in the page cache when the request is answered, so it
survives the process dying at any point (`kill -9`, the OOM killer); the snapshot database runs
in WAL mode with `synchronous=NORMAL`, the same promise. Only an operating-system crash or a
power loss can lose the last records; `--state.sync=full` flushes every record and every
snapshot to the disk too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from exporter.errors import JournalError, StateError
from exporter.storage.files import connect, lock, move_aside
from exporter.storage.journal import JournalFiles
from exporter.storage.store import Entry, Saved, State

log = logging.getLogger(__name__)

T = TypeVar("T")

# Snapshot early when the journal grows this long, so that a restart replays little.
MAX_JOURNAL: Final = 20_000


class SqliteStore:
    """One exporter's state file and journal, locked against a second exporter."""

    def __init__(
        self,
        path: Path,
        sync: str = "normal",
        reset: bool = False,
        snapshot_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._lock_file = lock(path)
        try:
            # Only under the lock: a reset must never move a running exporter's file away.
            self.moved_aside = move_aside(path) if reset else None
            self._db = connect(path, sync)
            self._journal = JournalFiles(path, flush_each=sync == "full")
        except JournalError as error:
            self._lock_file.close()
            raise StateError(f"{error}; start with --state.reset to move the state aside") from None
        except Exception:
            self._lock_file.close()
            raise
        if self.moved_aside is not None:
            log.warning("moved state file %s aside to %s; starting fresh", path, self.moved_aside)
        # Entries are numbered, journaled and applied under `_lock`, so the journal's order is
        # the order applied; `_write_lock` guards the database.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        snapshot_position = self._db.execute(
            "SELECT coalesce((SELECT position FROM snapshot WHERE id = 1), 0)"
        ).fetchone()[0]
        self._position: int = max(self._journal.last_seq, snapshot_position)
        self.journal_length = self._position - snapshot_position
        self._failure: BaseException | None = None
        self._snapshot_interval = snapshot_interval
        self._clock = clock
        self._last_snapshot = clock()

    def load(self) -> Saved:
        """The last snapshot, and the journal written after it, oldest first."""
        row = self._db.execute("SELECT position, data FROM snapshot WHERE id = 1").fetchone()
        position, data = row if row else (0, None)
        try:
            state = json.loads(zlib.decompress(data)) if data is not None else None
        except (zlib.error, ValueError) as error:
            raise StateError(
                f"state file {self.path} has an unreadable snapshot: {error}"
            ) from None
        records = self._journal.records
        self._journal.records = []  # read once, at start
        entries = (
            Entry(record.kind, record.at, record.body)
            for record in records
            if record.seq > position
        )
        return Saved(state, entries)

    def record(self, entry: Entry, apply: Callable[[], T]) -> T:
        """Journal `entry`, apply it, and return once the record is as durable as `sync` asks."""
        self._raise_if_failed()
        with self._lock:
            seq = self._position + 1
            try:
                self._journal.append(seq, entry.kind, entry.at, entry.body)
            except OSError as error:
                self._fail(error)
            self._position = seq
            self.journal_length += 1
            result = apply()
        # Outside the lock: other requests go on while this one's record is flushed.
        try:
            self._journal.write_through(seq)
        except OSError as error:
            self._fail(error)
        return result

    def maintain(self, export: Callable[[], State]) -> None:
        """Snapshot when the interval passed or the journal is long; checkpoint the database."""
        due = self._clock() - self._last_snapshot >= self._snapshot_interval
        if due or self.journal_length >= MAX_JOURNAL:
            self._last_snapshot = self._clock()
            if self.journal_length > 0:
                self.snapshot(export)
        with self._write_lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def snapshot(self, export: Callable[[], State]) -> None:
        """Store the whole state now and drop the journal it includes."""
        with self._lock:
            state = export()
            position = self._position
        data = zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)
        with self._write_lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshot (id, position, taken_at, data) "
                "VALUES (1, ?, ?, ?)",
                (position, time.time(), data),
            )
        with self._lock:
            # Records after `position` may already be in the current file: it is kept,
            # renamed, until the next snapshot covers it.
            self._journal.rotate(self._position)
            self.journal_length = self._position - position
        self._journal.drop_through(position)

    def close(self, export: Callable[[], State] | None = None) -> None:
        """Write a last snapshot of `export()`, close the journal and the database, unlock."""
        try:
            if export is not None:
                self.snapshot(export)
        finally:
            with self._lock:
                self._journal.close()
            with self._write_lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
            self._lock_file.close()

    def _fail(self, error: OSError) -> None:
        """The disk is full or gone: refuse every event from now on, since none can be kept."""
        log.error("cannot write the journal of %s: %s", self.path, error)
        self._failure = error
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise StateError(f"cannot write the state file {self.path}: {self._failure}")
