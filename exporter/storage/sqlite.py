"""Durable state: a journal of acknowledged events, and snapshots in SQLite.

Every event is written to the journal (exporter/journal_file.py) before it is applied and
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

from exporter.errors import JournalError, StateError
from exporter.storage.journal import JournalFiles

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
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
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal record: an event's body, or a sweep."""

    kind: int
    at: float
    body: bytes | None


class StateStore:
    """One exporter's state: its snapshot database and journal, locked against a second one.

    Journal records are numbered and written in the order the tracker applies them (callers
    hold the tracker's lock); nothing waits for another request.
    """

    def __init__(self, path: Path, sync: str = "normal", reset: bool = False) -> None:
        self.path = path
        self._lock_file = _lock(path)
        try:
            # Only under the lock: a reset must never move a running exporter's file away.
            self.moved_aside = move_aside(path) if reset else None
            self._db = _connect(path, sync)
            self._journal = JournalFiles(path, flush_each=sync == "full")
        except JournalError as error:
            self._lock_file.close()
            raise StateError(f"{error}; start with --state.reset to move the state aside") from None
        except Exception:
            self._lock_file.close()
            raise
        self._write_lock = threading.Lock()
        self._append_lock = threading.Lock()
        snapshot_position = self._db.execute(
            "SELECT coalesce((SELECT position FROM snapshot WHERE id = 1), 0)"
        ).fetchone()[0]
        self._position: int = max(self._journal.last_seq, snapshot_position)
        self.journal_length = self._position - snapshot_position
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
        records = self._journal.records
        self._journal.records = []  # read once, at start
        return snapshot, (
            JournalEntry(record.kind, record.at, record.body)
            for record in records
            if record.seq > position
        )

    def record_event(self, at: float, body: bytes) -> int:
        """Write an event to the journal; return its record number."""
        return self._append(EVENT, at, body)

    def record_sweep(self, at: float) -> int:
        """Write a sweep that ended calls."""
        return self._append(SWEEP, at, None)

    def record_rejection(self, reason: str, code: int) -> int:
        """Write a refused request, so that its counters never go back after a crash."""
        return self._append(REJECTION, time.time(), f"{reason} {code}".encode())

    def record_error(self, event: str) -> int:
        """Write a request that failed after parsing."""
        return self._append(ERROR, time.time(), event.encode())

    def wait_durable(self, seq: int) -> None:
        """Return once record `seq` is as durable as `sync` asks; raise StateError if not."""
        self._raise_if_failed()
        try:
            self._journal.write_through(seq)
        except OSError as error:
            self._fail(error)

    def position(self) -> int:
        """Sequence number of the last journal record."""
        return self._position

    def save_snapshot(self, state: dict[str, Any], position: int) -> None:
        """Store `state`, which includes the journal up to `position`, and drop that journal."""
        data = zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)
        with self._write_lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshot (id, position, taken_at, data) "
                "VALUES (1, ?, ?, ?)",
                (position, time.time(), data),
            )
        with self._append_lock:
            # Records after `position` may already be in the current file: it is kept,
            # renamed, until the next snapshot covers it.
            self._journal.rotate(self._position)
            self.journal_length = self._position - position
        self._journal.drop_through(position)

    def checkpoint(self) -> None:
        """Copy the snapshot database's write-ahead log into the database file."""
        with self._write_lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Write what is queued, close the journal and the database, and release the lock."""
        with self._append_lock:
            self._journal.close()
        with self._write_lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        self._lock_file.close()

    def _append(self, kind: int, at: float, body: bytes | None) -> int:
        self._raise_if_failed()
        with self._append_lock:
            seq = self._position + 1
            try:
                self._journal.append(seq, kind, at, body)
            except OSError as error:
                self._fail(error)
            self._position = seq
            self.journal_length += 1
            return seq

    def _fail(self, error: OSError) -> None:
        """The disk is full or gone: refuse every event from now on, since none can be kept."""
        log.error("cannot write the journal of %s: %s", self.path, error)
        self._failure = error
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise StateError(f"cannot write the state file {self.path}: {self._failure}")


def move_aside(path: Path) -> Path | None:
    """Rename a state file (and its WAL files) out of the way; return the new name."""
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.old")
    companions = [*path.parent.glob(path.name + "-*"), *path.parent.glob(path.name + ".journal*")]
    for companion in sorted(companions):
        suffix = companion.name.removeprefix(path.name)
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
        # Checkpoints (which flush to disk) run in the background sweeper.
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
