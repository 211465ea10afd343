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
# Less free space than this makes a write error a full disk, in all likelihood.
_LOW_SPACE: Final = 1 << 20
# Errors of the file system, not of the file's content: no reason to move it aside.
_CANNOT_WRITE: Final = (
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_PERM,
)
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
    """Hold an exclusive lock on `<path>.lock`; raise StateError if another exporter does,
    OSError if it cannot be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StateError(f"cannot use the state file {path}: {path.parent} is a file") from None
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


def cannot_use(path: Path, error: OSError) -> StateError:
    """The StateError of a state file the operating system refused, naming the file."""
    return StateError(f"cannot use the state file {error.filename or path}: {error.strerror}")


def connect(path: Path, sync: str) -> sqlite3.Connection:
    """Open the snapshot database in WAL mode, checked and with its schema; raise StateError."""
    if path.is_dir():
        raise StateError(f"state file {path} is a directory; point --state.path at a file")
    existed = path.exists() and path.stat().st_size > 0
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as error:
        raise _unusable(path, error) from None
    try:
        _prepare(db, path, sync, existed)
        os.chmod(path, 0o600)
    except sqlite3.DatabaseError as error:
        db.close()
        raise _unusable(path, error) from None
    except BaseException:
        db.close()
        raise
    return db


def _prepare(db: sqlite3.Connection, path: Path, sync: str, existed: bool) -> None:
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
            raise StateError(
                f"{path} is an SQLite file of another program, not an exporter state file; "
                "point --state.path elsewhere"
            )
    db.executescript(_SCHEMA)
    version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if version is None:
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    elif version[0] != str(SCHEMA_VERSION):
        raise StateError(
            f"state file {path} has schema {version[0]}, this exporter knows {SCHEMA_VERSION}; "
            "start with --state.reset to move it aside"
        )


def _unusable(path: Path, error: sqlite3.DatabaseError) -> StateError:
    code = _primary_code(error)
    if code in _CANNOT_WRITE:
        hint = _space_hint(path) if code != sqlite3.SQLITE_FULL else ""
        return StateError(f"cannot write the state file {path}: {error}{hint}")
    return StateError(
        f"state file {path} is unreadable ({error}); start with --state.reset to move it "
        "aside and start fresh, or point --state.path elsewhere"
    )


def _space_hint(path: Path) -> str:
    # SQLite reports a full disk as an I/O error when it is its shared-memory file that cannot
    # grow: say what the file system says.
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return ""
    return " (its file system is full)" if stat.f_bavail * stat.f_frsize < _LOW_SPACE else ""


def _primary_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF
