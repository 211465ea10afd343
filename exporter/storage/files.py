"""The state file on disk: locked against a second exporter, moved aside, opened and checked."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path
from typing import IO, Final

from exporter.errors import StateError

SCHEMA_VERSION: Final = 2
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    taken_at REAL NOT NULL,
    data BLOB NOT NULL
);
"""


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


def lock(path: Path) -> IO[bytes]:
    """Hold an exclusive lock on `<path>.lock`; raise StateError if another exporter does."""
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


def connect(path: Path, sync: str) -> sqlite3.Connection:
    """Open the snapshot database in WAL mode, checked and with its schema; raise StateError."""
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
