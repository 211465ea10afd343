"""State files missing, out of step or in the way: refused at start with one line, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest

from exporter.errors import StateError
from exporter.storage.sqlite import SqliteStore
from exporter.storage.store import EVENT, Entry, State
from tests.http_helpers import free_port
from tests.programs import EXPORTER, clean_env

# A long interval: snapshots are taken by the tests only.
NOT_DUE: Final = 3600.0


def state_of(value: State) -> Any:
    return lambda: value


def keep(store: SqliteStore, count: int) -> None:
    for _ in range(count):
        store.record(Entry(EVENT, 1.0, b"event=dtmf&callId=A"), lambda: None)


def journal_of(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.db"


def snapshot_then_journal(path: Path) -> None:
    """A snapshot up to record 3, then records 4 and 5 in the journal only (as after kill -9)."""
    store = SqliteStore(path, snapshot_interval=NOT_DUE)
    keep(store, 3)
    store.snapshot(state_of({"n": 3}))
    keep(store, 2)
    store.close()


def empty(path: Path) -> None:
    path.write_bytes(b"")


def delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("damage", [empty, delete], ids=["emptied", "deleted"])
def test_a_journal_without_its_snapshot_is_refused(
    path: Path, damage: Callable[[Path], None]
) -> None:
    snapshot_then_journal(path)
    intact = SqliteStore(path)
    assert len(list(intact.load().entries)) == 2, "a journal that follows its snapshot loads"
    intact.close()
    damage(path)
    journal = journal_of(path).read_bytes()

    with pytest.raises(StateError) as refused:
        SqliteStore(path)

    message = str(refused.value)
    assert f"journal {journal_of(path)} starts at record 4" in message
    assert f"state file {path} holds no snapshot: records 1 to 3 are missing" in message
    assert "--state.reset" in message
    assert journal_of(path).read_bytes() == journal, "the journal is left as it was"
    fresh = SqliteStore(path, reset=True)  # the way out the message names
    assert fresh.load().state is None
    fresh.close()


def test_a_journal_after_an_older_snapshot_is_refused(path: Path, tmp_path: Path) -> None:
    store = SqliteStore(path, snapshot_interval=NOT_DUE)
    keep(store, 3)
    store.snapshot(state_of({"n": 3}))
    store.maintain(state_of({}))  # not due: moves the snapshot from the log into the file
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)
    keep(store, 3)
    store.snapshot(state_of({"n": 6}))
    keep(store, 2)
    store.close()
    shutil.copy(backup, path)  # restored from a backup older than the journal

    with pytest.raises(StateError, match=r"holds a snapshot up to record 3: records 4 to 6 "):
        SqliteStore(path)


def journal_is_a_directory(path: Path) -> None:
    journal_of(path).mkdir(parents=True)


def state_is_a_directory(path: Path) -> None:
    path.mkdir(parents=True)


def lock_is_a_directory(path: Path) -> None:
    path.with_name(path.name + ".lock").mkdir(parents=True)


def directory_is_a_file(path: Path) -> None:
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.write_text("not a directory")


IN_THE_WAY: Final = {
    "journal is a directory": (journal_is_a_directory, r"\.journal: Is a directory"),
    "state is a directory": (state_is_a_directory, "state.db is a directory"),
    "lock is a directory": (lock_is_a_directory, r"\.lock: Is a directory"),
    "directory is a file": (directory_is_a_file, "data is a file"),
}


@pytest.mark.parametrize("case", IN_THE_WAY.keys())
def test_a_path_in_the_way_is_a_message(path: Path, case: str) -> None:
    arrange, expected = IN_THE_WAY[case]
    arrange(path)
    with pytest.raises(StateError, match=expected):
        SqliteStore(path)


def refused_start(state: Path) -> str:
    """The one line an exporter refusing `state` logs; it exits with 1, without a traceback."""
    result = subprocess.run(
        [*EXPORTER, f"--web.listen-address=127.0.0.1:{free_port()}", f"--state.path={state}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_the_exporter_refuses_a_journal_without_its_snapshot(path: Path) -> None:
    snapshot_then_journal(path)
    empty(path)

    line = refused_start(path)

    assert str(journal_of(path)) in line
    assert f"state file {path} holds no snapshot" in line
    assert "--state.reset" in line


def test_the_exporter_says_a_journal_path_is_a_directory(path: Path) -> None:
    journal_is_a_directory(path)

    assert refused_start(path).endswith(
        f"cannot use the state file {journal_of(path)}: Is a directory"
    )


# --- A start that fails, or keeps nothing, leaves nothing behind ----------------------------------


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file and directory under `root`, with the files' contents."""
    return {
        str(found.relative_to(root)): None if found.is_dir() else found.read_bytes()
        for found in sorted(root.rglob("*"))
    }


def test_a_new_state_that_kept_nothing_is_removed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "var" / "data" / "state.db"
    store = SqliteStore(path)
    assert store.created
    store.close(state_of({"n": 0}))
    assert tree(tmp_path) == {}


def test_a_new_state_that_kept_an_entry_stays(tmp_path: Path) -> None:
    path = tmp_path / "data" / "state.db"
    store = SqliteStore(path)
    keep(store, 1)
    store.close(state_of({"n": 1}))
    reopened = SqliteStore(path)
    assert not reopened.created
    assert reopened.load().state == {"n": 1}
    reopened.close(state_of({"n": 1}))
    assert path.exists(), "an existing state is never removed"


def test_an_existing_directory_stays_when_a_new_state_is_removed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    SqliteStore(tmp_path / "data" / "state.db").close()
    assert tree(tmp_path) == before


@pytest.mark.parametrize("damage", [empty, delete], ids=["emptied", "deleted"])
def test_a_refused_state_leaves_no_new_file(path: Path, damage: Callable[[Path], None]) -> None:
    snapshot_then_journal(path)
    damage(path)
    path.with_name(path.name + ".lock").unlink()
    before = tree(path.parent).keys()

    with pytest.raises(StateError, match="records 1 to 3 are missing"):
        SqliteStore(path)

    assert tree(path.parent).keys() == before


def test_a_state_in_use_leaves_no_new_file(path: Path) -> None:
    first = SqliteStore(path)
    keep(first, 1)
    before = tree(path.parent)
    with pytest.raises(StateError, match="in use by another exporter"):
        SqliteStore(path)
    assert tree(path.parent) == before
    first.close()


def test_a_lock_removed_by_a_stopping_exporter_is_not_shared(path: Path) -> None:
    unused = SqliteStore(path)
    lock_path = path.with_name(path.name + ".lock")
    held = lock_path.open("ab")  # opened by a starting exporter just before the file goes
    unused.close()  # kept nothing: removes its files, the lock among them
    second = SqliteStore(path)
    try:
        assert lock_path.exists()
        assert os.fstat(held.fileno()).st_ino != lock_path.stat().st_ino
        with pytest.raises(StateError, match="in use by another exporter"):
            SqliteStore(path)
    finally:
        held.close()
        second.close()


# --- A try-out's state: begun with the signature check off ----------------------------------------


def state_in(path: Path) -> State | None:
    """The snapshot a store with the signature check on loads from `path`."""
    store = SqliteStore(path)
    try:
        return store.load().state
    finally:
        store.close()


def try_out(path: Path) -> None:
    """A state begun with the signature check off, holding three events."""
    store = SqliteStore(path, unsigned=True)
    keep(store, 3)
    store.close(state_of({"n": 3}))


def test_a_try_out_state_is_refused_once_the_check_is_on(path: Path) -> None:
    try_out(path)
    before = tree(path.parent)

    with pytest.raises(StateError) as refused:
        SqliteStore(path)

    assert str(refused.value) == (
        f"state file {path} was begun with --webhook.verify-signature=false, as a try-out: its "
        "statistics may hold hand-made events. Start once with --state.reset to move it aside "
        "and count from zero, or with --state.keep-unsigned to keep counting on it"
    )
    assert tree(path.parent) == before


def test_a_try_out_state_is_used_again_while_the_check_stays_off(path: Path) -> None:
    try_out(path)
    store = SqliteStore(path, unsigned=True)
    assert store.load().state == {"n": 3}
    store.close()


def test_reset_moves_a_try_out_state_aside(path: Path) -> None:
    try_out(path)
    store = SqliteStore(path, reset=True)
    assert store.load().state is None
    keep(store, 1)
    store.close(state_of({"n": 1}))
    assert state_in(path) == {"n": 1}, "the new state is not a try-out's"


def test_keep_unsigned_adopts_a_try_out_state_once(path: Path) -> None:
    try_out(path)
    store = SqliteStore(path, keep_unsigned=True)
    assert store.load().state == {"n": 3}
    store.close(state_of({"n": 3}))
    assert state_in(path) == {"n": 3}, "adopted: no flag needed any more"


def test_a_production_state_run_once_with_the_check_off_stays_usable(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 1)
    store.close(state_of({"n": 1}))
    SqliteStore(path, unsigned=True).close(state_of({"n": 1}))
    assert state_in(path) == {"n": 1}
