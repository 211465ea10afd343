"""The state file on disk: locked against a second exporter, moved aside, opened and checked.

Its files are private (0600, a directory made for them 0700): the journal and SQLite's WAL hold
events, statistics and label values. A start that fails, or an exporter that stops without
having kept anything, removes what it created, so that neither leaves files behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final

from exporter.errors import StateError

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
PRIVATE_FILE: Final = 0o600
PRIVATE_DIRECTORY: Final = 0o700
# In the meta table of a state begun with the signature check off: a try-out's.
_UNSIGNED: Final = "begun_unsigned"
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
    """Rename a state file, its WAL files and its journal out of the way; return the new name
    of the state file, or None if there was nothing to move."""
    target = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.old")
    companions = [*path.parent.glob(path.name + "-*"), *path.parent.glob(path.name + ".journal*")]
    if not path.exists() and not companions:
        return None
    for companion in sorted(companions):
        suffix = companion.name.removeprefix(path.name)
        companion.rename(target.with_name(target.name + suffix))
    if path.exists():
        path.rename(target)
    return target


class NewFiles:
    """The state's files and directories that this start made, to remove if it keeps nothing."""

    def __init__(self, directories: Sequence[Path] = ()) -> None:
        self._directories = list(directories)  # outermost first
        self._files: list[Path] = []

    def add(self, file: Path) -> None:
        """Note a file this start made."""
        self._files.append(file)

    def add_missing(self, *files: Path) -> None:
        """Note those of `files` that do not exist yet, before they are made."""
        self._files += [file for file in files if not os.path.lexists(file)]

    def made(self, file: Path) -> bool:
        """Whether this start made `file`."""
        return file in self._files

    def remove(self) -> None:
        """Remove the files, newest first, then the directories if nothing else is in them."""
        for file in reversed(self._files):
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)
        for directory in reversed(self._directories):
            with contextlib.suppress(OSError):  # not empty: someone else's files are there
                directory.rmdir()


def lock_path(path: Path) -> Path:
    """The file whose lock says that an exporter uses the state at `path`."""
    return path.with_name(path.name + ".lock")


def missing_directories(directory: Path) -> list[Path]:
    """`directory` and its parents as far as they do not exist, outermost first."""
    missing = []
    while not os.path.lexists(directory) and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing[::-1]


def lock(path: Path) -> IO[bytes]:
    """Hold an exclusive lock on `<path>.lock`; raise StateError if another exporter does,
    OSError if it cannot be made."""
    try:
        path.parent.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
    except FileExistsError:
        raise StateError(f"cannot use the state file {path}: {path.parent} is a file") from None
    while True:
        lock_file = _open_private(lock_path(path))
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise StateError(
                f"state file {path} is in use by another exporter; give each exporter its own "
                "--state.path"
            ) from None
        if _is_at(lock_file, lock_path(path)):
            return lock_file
        # An exporter that kept nothing removed the file meanwhile: lock the one there now.
        lock_file.close()


def _open_private(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        _make_private(fd)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


def _make_private(file: int | Path) -> None:
    """Mode 0600 for a file of the state, whatever the umask or an older exporter made it."""
    mode = os.stat(file).st_mode & 0o777
    if mode != PRIVATE_FILE:
        # Another user's file stays as it is: that is how it was shared, if it works.
        with contextlib.suppress(PermissionError):
            os.chmod(file, PRIVATE_FILE)


def _is_at(opened: IO[bytes], path: Path) -> bool:
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(opened.fileno())
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def database_files(path: Path) -> tuple[Path, Path, Path]:
    """The database and the write-ahead log and shared memory files SQLite keeps beside it."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def cannot_use(path: Path, error: OSError) -> StateError:
    """The StateError of a state file the operating system refused, naming the file."""
    return StateError(f"cannot use the state file {error.filename or path}: {error.strerror}")


def connect(
    path: Path, sync: str, unsigned: bool = False, keep_unsigned: bool = False
) -> sqlite3.Connection:
    """Open the snapshot database in WAL mode, checked and with its schema; raise StateError.

    A new state begun with the signature check off (`unsigned`) is marked as a try-out's; such
    a state is refused once the check is on, unless `keep_unsigned`, which removes the mark.
    """
    if path.is_dir():
        raise StateError(f"state file {path} is a directory; point --state.path at a file")
    existed = path.exists() and path.stat().st_size > 0
    _create_private(path)
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as error:
        raise _unusable(path, error) from None
    try:
        new = _prepare(db, path, sync, existed)
        _check_origin(db, path, new, unsigned, keep_unsigned)
    except sqlite3.DatabaseError as error:
        db.close()
        raise _unusable(path, error) from None
    except BaseException:
        db.close()
        raise
    return db


def _create_private(path: Path) -> None:
    """Make the database 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
    database's mode (checked with SQLite 3.40)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        for file in database_files(path):
            with contextlib.suppress(FileNotFoundError):
                _make_private(file)
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
    finally:
        os.close(fd)


def _check_origin(
    db: sqlite3.Connection, path: Path, new: bool, unsigned: bool, keep: bool
) -> None:
    """Mark a try-out's new state; refuse a try-out's state once the check is on, or adopt it."""
    if unsigned:
        # Only a state begun so: one that counted signed events before stays production's.
        if new:
            db.execute("INSERT INTO meta (key, value) VALUES (?, '1')", (_UNSIGNED,))
        return
    if db.execute("SELECT 1 FROM meta WHERE key = ?", (_UNSIGNED,)).fetchone() is None:
        return
    if not keep:
        raise StateError(
            f"state file {path} was begun with --webhook.verify-signature=false, as a try-out: "
            "its statistics may hold hand-made events. Start once with --state.reset to move "
            "it aside and count from zero, or with --state.keep-unsigned to keep counting on it"
        )
    db.execute("DELETE FROM meta WHERE key = ?", (_UNSIGNED,))
    log.warning(
        "state file %s was begun with the signature check off; its statistics are kept, as "
        "--state.keep-unsigned asks",
        path,
    )


def _prepare(db: sqlite3.Connection, path: Path, sync: str, existed: bool) -> bool:
    """Set the database up and check it is an exporter's; whether it is a new one."""
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
        return True
    if version[0] != str(SCHEMA_VERSION):
        raise StateError(
            f"state file {path} has schema {version[0]}, this exporter knows {SCHEMA_VERSION}; "
            "start with --state.reset to move it aside"
        )
    return False


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
