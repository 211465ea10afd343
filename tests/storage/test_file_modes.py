"""State files are private: the directory 0700, every file 0600, whatever the umask."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from exporter.storage.sqlite import SqliteStore
from exporter.storage.store import EVENT, Entry

EVERY_FILE: Final = {
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "state.db.lock",
    "state.db.journal",
}


def modes(directory: Path) -> dict[str, str]:
    return {path.name: oct(path.stat().st_mode & 0o777) for path in directory.iterdir()}


def keep(store: SqliteStore, count: int) -> None:
    for _ in range(count):
        store.record(Entry(EVENT, 1.0, b"event=dtmf&callId=A"), lambda: None)


@pytest.fixture(params=[0o022, 0o002, 0o000], ids=["umask 022", "umask 002", "umask 000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask")
def test_a_new_state_is_private_while_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "data" / "state.db"
    store = SqliteStore(path, snapshot_interval=3600.0)
    try:
        keep(store, 3)
        store.snapshot(lambda: {"n": 3})  # the WAL now holds statistics
        keep(store, 1)
        files = modes(path.parent)
    finally:
        store.close()

    assert files.keys() >= EVERY_FILE
    assert set(files.values()) == {"0o600"}, files
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.usefixtures("umask")
def test_files_an_older_exporter_left_readable_become_private(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    keep(store, 1)
    store.close()
    path.chmod(0o644)
    path.with_name("state.db.lock").chmod(0o644)

    store = SqliteStore(path)
    try:
        files = modes(tmp_path)
    finally:
        store.close()

    assert files.keys() >= EVERY_FILE
    assert set(files.values()) == {"0o600"}, files


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    store = SqliteStore(shared / "state.db")
    keep(store, 1)
    store.close()
    assert oct(shared.stat().st_mode & 0o777) == "0o755"
