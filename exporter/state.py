"""Durable state in SQLite: a journal of acknowledged events and periodic snapshots.

Every event is written to the journal (one small transaction) before it is applied and answered,
so whatever sipgate got a 2xx for survives a crash. A snapshot of the whole state replaces the
journal up to its position now and then, which keeps restarts fast and the file bounded.

The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives the
process dying at any point (`kill -9`, OOM killer); only an operating-system crash or power loss
can lose the last transactions. `--state.sync=full` makes every commit wait for the disk too.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
_INSERT: Final = "INSERT INTO journal (seq, kind, at, body) VALUES (?, ?, ?, ?)"
EVENT: Final = 1
SWEEP: Final = 2
REJECTION: Final = 3
ERROR: Final = 4
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    taken_at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,  -- numbered by the store, above every snapshot's position
    kind INTEGER NOT NULL,
    at REAL NOT NULL,
    body BLOB
);
"""


class StateError(Exception):
    """The state file cannot be used; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal record: an event's body, or a sweep."""

    kind: int
    at: float
    body: bytes | None


class StateStore:
    """One exporter's state file, locked against a second exporter.

    Journal records get their sequence numbers in the order the tracker applies them and are
    queued. A request waiting for its record commits everything queued so far in one
    transaction, or finds that the request before it already did (group commit): no request
    holds the tracker's lock while the disk works, and a lone request needs no other thread.
    """

    def __init__(self, path: Path, sync: str = "normal", reset: bool = False) -> None:
        self.path = path
        self._lock_file = _lock(path)
        try:
            # Only under the lock: a reset must never move a running exporter's file away.
            self.moved_aside = move_aside(path) if reset else None
            self._db = _connect(path, sync)
        except Exception:
            self._lock_file.close()
            raise
        self._write_lock = threading.Lock()
        self._position: int = self._db.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM journal), 0),"
            " coalesce((SELECT position FROM snapshot WHERE id = 1), 0))"
        ).fetchone()[0]
        self.journal_length: int = self._db.execute("SELECT count(*) FROM journal").fetchone()[0]
        self._queue: list[tuple[int, int, float, bytes | None]] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        # A connection of its own, so that a checkpoint never waits for or blocks a commit.
        self._checkpointer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._checkpointer.execute("PRAGMA busy_timeout = 5000")
        self._checkpoint_lock = threading.Lock()
        self._committed = self._position
        self._failure: BaseException | None = None

    def load(self) -> tuple[dict[str, Any] | None, Iterator[JournalEntry]]:
        """The last snapshot, and the journal written after it, oldest first."""
        row = self._db.execute("SELECT position, data FROM snapshot WHERE id = 1").fetchone()
        position, data = row if row else (0, None)
        try:
            snapshot = json.loads(zlib.decompress(data)) if data is not None else None
        except (zlib.error, ValueError) as error:
            raise StateError(
                f"state file {self.path} has an unreadable snapshot: {error}"
            ) from None
        entries = self._db.execute(
            "SELECT kind, at, body FROM journal WHERE seq > ? ORDER BY seq", (position,)
        ).fetchall()
        return snapshot, (JournalEntry(kind, at, body) for kind, at, body in entries)

    def record_event(self, at: float, body: bytes) -> int:
        """Queue an event; it is on disk once `wait_durable` of the number returned returns."""
        return self._queue_record(EVENT, at, body)

    def record_sweep(self, at: float) -> int:
        """Queue a sweep that ended calls."""
        return self._queue_record(SWEEP, at, None)

    def record_rejection(self, reason: str, code: int) -> int:
        """Queue a refused request, so that its counters never go back after a crash."""
        return self._queue_record(REJECTION, time.time(), f"{reason} {code}".encode())

    def record_error(self, event: str) -> int:
        """Queue a request that failed after parsing."""
        return self._queue_record(ERROR, time.time(), event.encode())

    def wait_durable(self, seq: int) -> None:
        """Return once record `seq` is committed; raise StateError if writing failed."""
        with self._commit_lock:
            if self._committed >= seq:
                return
            self._raise_if_failed()
            with self._queue_lock:
                batch, self._queue = self._queue, []
            try:
                with self._write_lock:
                    if len(batch) == 1:  # autocommit: one statement is one transaction
                        self._db.execute(_INSERT, batch[0])
                    else:
                        self._db.execute("BEGIN IMMEDIATE")
                        self._db.executemany(_INSERT, batch)
                        self._db.execute("COMMIT")
            except BaseException as error:  # the disk is full or gone: refuse from now on
                log.error("cannot write the state file %s: %s", self.path, error)
                self._failure = error
                self._raise_if_failed()
            self._committed = batch[-1][0]

    def position(self) -> int:
        """Sequence number of the last journal record queued."""
        return self._position

    def save_snapshot(self, state: dict[str, Any], position: int) -> None:
        """Store `state`, which includes the journal up to `position`, and drop that journal."""
        data = zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)
        with self._write_lock:
            # One transaction: the snapshot and the journal it replaces change together.
            # Records up to `position` still queued land later and are skipped by `load`.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO snapshot (id, position, taken_at, data) "
                    "VALUES (1, ?, ?, ?)",
                    (position, time.time(), data),
                )
                cursor = self._db.execute("DELETE FROM journal WHERE seq <= ?", (position,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.journal_length = max(0, self.journal_length - cursor.rowcount)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database; requests go on writing meanwhile."""
        with self._checkpoint_lock:
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Write what is queued, close the database and release the lock."""
        if self._failure is None:
            self.wait_durable(self._position)
        with self._checkpoint_lock:
            self._checkpointer.close()
        with self._write_lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        self._lock_file.close()

    def _queue_record(self, kind: int, at: float, body: bytes | None) -> int:
        self._raise_if_failed()
        with self._queue_lock:
            self._position += 1
            self._queue.append((self._position, kind, at, body))
            self.journal_length += 1
            return self._position

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise StateError(f"cannot write the state file {self.path}: {self._failure}")


def move_aside(path: Path) -> Path | None:
    """Rename a state file (and its WAL files) out of the way; return the new name."""
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.old")
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    path.rename(target)
    return target


def _lock(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_name(path.name + ".lock").open("ab")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StateError(
            f"state file {path} is in use by another exporter; give each exporter its own "
            "--state.path"
        ) from None
    return lock_file


def _connect(path: Path, sync: str) -> sqlite3.Connection:
    existed = path.exists() and path.stat().st_size > 0
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
        # Journaled bodies hold phone numbers: overwrite them when the journal is truncated.
        db.execute("PRAGMA secure_delete = ON")
        # Checkpoints (which flush to disk) run in the background, not inside a request's commit.
        db.execute("PRAGMA wal_autocheckpoint = 0")
        if existed:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "meta" not in tables:
                db.close()
                raise StateError(
                    f"{path} is an SQLite file of another program, not an exporter state file; "
                    "point --state.path elsewhere"
                )
        db.executescript(_SCHEMA)
        version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as error:
        raise StateError(
            f"state file {path} is unreadable ({error}); start with --state.reset to move it "
            "aside and start fresh, or point --state.path elsewhere"
        ) from None
    if version is None:
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    elif version[0] != str(SCHEMA_VERSION):
        db.close()
        raise StateError(
            f"state file {path} has schema {version[0]}, this exporter knows {SCHEMA_VERSION}; "
            "start with --state.reset to move it aside"
        )
    os.chmod(path, 0o600)
    return db
