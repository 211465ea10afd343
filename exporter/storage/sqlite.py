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

A write that fails (a full disk) refuses only its own entry or snapshot: the next one tries
again, so the store recovers by itself once there is space; `health` tells how it goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final, TypeVar

from exporter.errors import JournalError, StateError
from exporter.storage.files import (
    NewFiles,
    cannot_use,
    connect,
    database_files,
    lock,
    lock_path,
    missing_directories,
    move_aside,
)
from exporter.storage.health import JOURNAL, SNAPSHOT, StoreHealth
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
        *,
        unsigned: bool = False,
        keep_unsigned: bool = False,
    ) -> None:
        """Lock and open the state at `path`; raise StateError, leaving no new file, if it
        cannot be used. `unsigned`: events are taken without the signature check, so a new
        state is a try-out's, refused later with the check on unless `keep_unsigned`."""
        self.path = path
        self.health = StoreHealth()
        self._lock_file, self._new = _lock(path)
        try:
            self.moved_aside, self._db, self._journal = _open_files(
                path, reset, sync, self._new, unsigned, keep_unsigned
            )
        except BaseException as error:
            self._new.remove()
            self._lock_file.close()
            if isinstance(error, JournalError):
                raise StateError(
                    f"{error}; start with --state.reset to move the state aside"
                ) from None
            if isinstance(error, OSError):
                raise cannot_use(path, error) from None
            raise
        # Whether this start made the database: removed again at close if nothing was kept.
        self.created = self._new.made(path)
        if self.moved_aside is not None:
            log.warning("moved state file %s aside to %s; starting fresh", path, self.moved_aside)
        # Entries are numbered, journaled and applied under `_lock`, so the journal's order is
        # the order applied; `_write_lock` guards the database.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False  # a sweep may still run while the exporter stops
        snapshot_position = _snapshot_position(self._db)
        self._position: int = max(self._journal.last_seq, snapshot_position)
        self.journal_length = self._position - snapshot_position
        self._snapshots = 0  # written by this process
        self._snapshot_interval = snapshot_interval
        self._clock = clock
        self._last_snapshot = clock()
        # Requests refused while the journal failed are counted in memory only; a snapshot
        # keeps them once it can be written.
        self._unjournaled = False

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
        """Journal `entry`, apply it, and return once the record is as durable as `sync` asks;
        raise StateError, applying nothing, if the journal cannot take it."""
        with self._lock:
            self._raise_if_closed()
            seq = self._position + 1
            errors = self.health.errors(JOURNAL)
            try:
                if self.health.is_failing(JOURNAL):
                    # Until the file can grow again, not even a record that would fit is kept:
                    # a small one now and then would end and start episodes, and readiness.
                    self._journal.make_room()
                self._journal.append(seq, entry.kind, entry.at, entry.body)
            except OSError as error:
                raise self._journal_failed(error) from None
            self._position = seq
            self.journal_length += 1
            result = apply()
        # Outside the lock: other requests go on while this one's record is flushed.
        try:
            self._journal.write_through(seq)
        except OSError as error:
            raise self._journal_failed(error) from None
        self.health.worked(JOURNAL, errors)
        return result

    def maintain(self, export: Callable[[], State]) -> None:
        """Snapshot when the interval passed or the journal is long; checkpoint the database;
        retry a journal that could not grow, so that readiness recovers without traffic."""
        if self._closed:
            return
        if self.health.is_failing(JOURNAL):
            self._retry_journal()
        due = self._clock() - self._last_snapshot >= self._snapshot_interval
        # A failing snapshot is tried again at the interval only: it costs a whole export.
        retry = not self.health.is_failing(SNAPSHOT)
        long = self.journal_length >= MAX_JOURNAL and retry
        unjournaled = self._unjournaled and retry and not self.health.is_failing(JOURNAL)
        if due or long or unjournaled:
            self._last_snapshot = self._clock()
            if self.journal_length > 0 or self._unjournaled:
                # Cleared before the export: a journal failure during it sets it again.
                owed, self._unjournaled = self._unjournaled, False
                if not self._try_snapshot(export):
                    self._unjournaled = self._unjournaled or owed
        with self._write_lock, contextlib.suppress(sqlite3.Error):
            # Fails only when the disk is full; the log stays whole and is tried again.
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def snapshot(self, export: Callable[[], State]) -> None:
        """Store the whole state now and drop the journal it includes; raise StateError if it
        cannot be written, leaving the journal in use as it was."""
        self._rotate(self._write_snapshot(export))

    def close(self, export: Callable[[], State] | None = None) -> None:
        """Write a last snapshot of `export()`, close the journal and the database, unlock.

        Everything is closed even if the snapshot fails; then raise StateError: the journal
        still holds every entry, and the next start replays it. A state this start made and
        never kept an entry in is removed instead: a start that failed leaves nothing behind.
        """
        if self.created and self._position == 0 and not self._snapshots:
            self._release(discard=True)
            return
        try:
            if export is not None:
                position = self._write_snapshot(export)
                # A new journal only tidies up now: the next start skips what the snapshot holds.
                with contextlib.suppress(StateError):
                    self._rotate(position)
        except StateError as error:
            raise StateError(
                f"the final snapshot failed: {error}; the journal keeps every event for the "
                "next start"
            ) from None
        finally:
            self._release()

    def _write_snapshot(self, export: Callable[[], State]) -> int:
        """Store the whole state in the database; the position it holds."""
        with self._lock:
            self._raise_if_closed()
            state = export()
            position = self._position
        data = zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)
        try:
            with self._write_lock, self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO snapshot (id, position, taken_at, data) "
                    "VALUES (1, ?, ?, ?)",
                    (position, time.time(), data),
                )
        except sqlite3.Error as error:
            raise StateError(f"cannot write a snapshot to {self.path}: {error}") from None
        self._snapshots += 1
        return position

    def _rotate(self, position: int) -> None:
        """Start a new journal file after a snapshot at `position`, and drop what it holds."""
        try:
            with self._lock:
                self._raise_if_closed()
                # Records after `position` may already be in the current file: it is kept,
                # renamed, until the next snapshot covers it.
                self._journal.rotate(self._position)
                self.journal_length = self._position - position
        except OSError as error:
            # The snapshot stands; the journal goes on in its file until a rotation works.
            raise StateError(
                f"cannot rotate the journal {self._journal.current}: {error.strerror}"
            ) from None
        with contextlib.suppress(OSError):  # what is left is deleted after the next snapshot
            self._journal.drop_through(position)

    def _retry_journal(self) -> None:
        errors = self.health.errors(JOURNAL)
        try:
            self._journal.make_room()
        except OSError:
            return  # still failing: said when it started, counted for each entry refused
        self.health.worked(JOURNAL, errors)

    def _try_snapshot(self, export: Callable[[], State]) -> bool:
        try:
            self.snapshot(export)
        except StateError as error:
            self.health.failed(SNAPSHOT, error)
            return False
        self.health.worked(SNAPSHOT)
        return True

    def _release(self, discard: bool = False) -> None:
        """Close the files and unlock; with `discard`, remove the files this start made."""
        try:
            with self._lock:
                self._closed = True
                self._journal.close()
        except OSError as error:
            raise StateError(
                f"cannot close the journal {self._journal.current}: {error.strerror}"
            ) from None
        finally:
            with self._write_lock:
                if not discard:
                    with contextlib.suppress(sqlite3.Error):  # else the next start checkpoints
                        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
            if discard:
                self._new.remove()  # the lock file too, while it is still held
            self._lock_file.close()

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise StateError(f"the state file {self.path} is closed: the exporter stops")

    def _journal_failed(self, error: OSError) -> StateError:
        failure = StateError(f"cannot write the journal {self._journal.current}: {error.strerror}")
        self._unjournaled = True
        self.health.failed(JOURNAL, failure)
        return failure


def _lock(path: Path) -> tuple[IO[bytes], NewFiles]:
    """Lock the state at `path`; and what this start made, to remove if it keeps nothing."""
    directories = missing_directories(path.parent)
    lock_existed = lock_path(path).exists()
    try:
        lock_file = lock(path)
    except StateError:
        NewFiles(directories).remove()
        raise
    except OSError as error:
        NewFiles(directories).remove()
        raise cannot_use(path, error) from None
    new = NewFiles(directories)
    if not lock_existed:
        new.add(lock_path(path))
    return lock_file, new


def _open_files(
    path: Path, reset: bool, sync: str, new: NewFiles, unsigned: bool, keep_unsigned: bool
) -> tuple[Path | None, sqlite3.Connection, JournalFiles]:
    """Under the lock (a reset must never move a running exporter's files away): the files
    moved aside if any, the database and the journal; `new` notes the files made."""
    moved_aside = move_aside(path) if reset else None
    new.add_missing(*database_files(path), path.with_name(path.name + ".journal"))
    db = connect(path, sync, unsigned, keep_unsigned)
    try:
        return moved_aside, db, JournalFiles(path, sync == "full", _snapshot_position(db))
    except BaseException:
        db.close()
        raise


def _snapshot_position(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT position FROM snapshot WHERE id = 1").fetchone()
    return int(row[0]) if row else 0
