"""The embedded store: journal, snapshots, replay, locking and unreadable files."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from exporter.domain.events import Answer, Dtmf, Hangup, NewCall
from exporter.domain.tracker import CallTracker
from exporter.errors import StateError
from exporter.metrics import new_requests, new_statistics
from exporter.recorder import Recorder
from exporter.storage.files import move_aside
from exporter.storage.sqlite import MAX_JOURNAL, SqliteStore
from exporter.storage.store import EVENT, SWEEP, Entry, State
from tests.conftest import EXPIRE_AFTER, FORWARD_GRACE, FakeClock
from tests.test_invariant import random_stream

NEW_CALL = b"event=newCall&direction=in&callId=A&from=4921&to=4922&user%5B%5D=Alice"
ANSWER = b"event=answer&direction=in&callId=A&user=Alice"
HANGUP = b"event=hangup&direction=in&callId=A&cause=normalClearing"


def fresh_tracker(max_open: int | None = None) -> CallTracker:
    return CallTracker(new_statistics(), FORWARD_GRACE, EXPIRE_AFTER, max_open)


def keep(store: SqliteStore, at: float, body: bytes | None, kind: int = EVENT) -> None:
    """Record an entry that changes nothing."""
    store.record(Entry(kind, at, body), lambda: None)


def state_of(value: State) -> Any:
    return lambda: value


def bodies(store: SqliteStore) -> list[bytes | None]:
    return [entry.body for entry in store.load().entries]


def reopened(path: Path) -> tuple[State | None, list[bytes | None]]:
    """What a new store on `path` loads: the state of its snapshot and the bodies after it."""
    store = SqliteStore(path)
    try:
        saved = store.load()
        return saved.state, [entry.body for entry in saved.entries]
    finally:
        store.close()


def recorder_on(path: Path, tracker: CallTracker, reset: bool = False) -> Recorder:
    recorder = Recorder(tracker, new_requests(), SqliteStore(path, reset=reset))
    recorder.restore()
    return recorder


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.db"


def test_journal_survives_reopening(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 10.0, NEW_CALL)
    keep(store, 11.0, None, SWEEP)
    assert store.journal_length == 2
    store.close()
    store = SqliteStore(path)
    saved = store.load()
    assert saved.state is None
    assert [(e.kind, e.at, e.body) for e in saved.entries] == [
        (EVENT, 10.0, NEW_CALL),
        (SWEEP, 11.0, None),
    ]
    assert store.journal_length == 2
    store.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_record_applies_in_order_and_returns_what_apply_gave(path: Path) -> None:
    store = SqliteStore(path)
    applied: list[int] = []

    def apply(number: int) -> int:
        applied.append(number)
        return number * 10

    assert store.record(Entry(EVENT, 1.0, NEW_CALL), lambda: apply(1)) == 10
    assert store.record(Entry(EVENT, 2.0, ANSWER), lambda: apply(2)) == 20
    assert applied == [1, 2]
    store.close()


def test_snapshot_replaces_the_journal_it_includes(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 1.0, NEW_CALL)
    keep(store, 2.0, ANSWER)
    store.snapshot(state_of({"marker": 1}))
    assert store.journal_length == 0
    keep(store, 3.0, HANGUP)
    store.close()
    assert reopened(path) == ({"marker": 1}, [HANGUP])


def test_close_writes_a_last_snapshot(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 1.0, NEW_CALL)
    store.close(state_of({"marker": "last"}))
    assert reopened(path) == ({"marker": "last"}, [])


def test_maintain_snapshots_when_the_interval_passed_or_the_journal_is_long(path: Path) -> None:
    clock = FakeClock(0.0)
    store = SqliteStore(path, snapshot_interval=30.0, clock=clock)
    exported: list[int] = []

    def export() -> State:
        exported.append(store.journal_length)
        return {"n": len(exported)}

    keep(store, 1.0, NEW_CALL)
    store.maintain(export)
    assert exported == []  # not due yet
    clock.advance(30.0)
    store.maintain(export)
    assert exported == [1]
    clock.advance(30.0)
    store.maintain(export)
    assert exported == [1], "nothing was journaled since the last snapshot"
    for index in range(MAX_JOURNAL):
        keep(store, float(index), None, SWEEP)
    store.maintain(export)
    assert exported == [1, MAX_JOURNAL]
    store.close()


def test_second_store_on_the_same_file_is_refused(path: Path) -> None:
    first = SqliteStore(path)
    with pytest.raises(StateError, match="in use by another exporter"):
        SqliteStore(path)
    first.close()
    SqliteStore(path).close()


@pytest.mark.parametrize("content", [b"garbage" * 1000, b"SQLite format 3\x00" + b"\x01" * 5000])
def test_unreadable_file_is_refused_and_left_alone(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StateError, match=r"unreadable .*--state\.reset"):
        SqliteStore(path)
    assert path.read_bytes() == content
    SqliteStore(path.with_name("other.db")).close()  # the lock was released


def test_truncated_database_is_refused(path: Path) -> None:
    store = SqliteStore(path)
    for index in range(2000):
        keep(store, float(index), NEW_CALL.replace(b"callId=A", f"callId={index}".encode()))
    store.snapshot(state_of({"calls": list(range(5000))}))
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError, match="unreadable"):
        SqliteStore(path)


def test_move_aside_keeps_the_old_bytes(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 1.0, NEW_CALL)
    store.close()
    original = path.read_bytes()
    moved = move_aside(path)
    assert moved is not None
    assert moved.name.startswith("state.db.")
    assert moved.name.endswith(".old")
    assert moved.read_bytes() == original
    assert not path.exists()
    assert move_aside(path) is None


def test_recorder_restores_calls_and_statistics(path: Path) -> None:
    recorder = recorder_on(path, fresh_tracker())
    recorder.event(NewCall("A", "in", users=("Alice",)), NEW_CALL, 100.0)
    recorder.event(Answer("A", "in", user="Alice"), ANSWER, 104.0)
    recorder.close()

    restored = fresh_tracker()
    recorder = recorder_on(path, restored)
    assert restored.open_calls == 1
    assert recorder.requests.read().requests[("newCall", "200")] == 1
    recorder.event(Hangup("A", "in", cause="normalClearing"), HANGUP, 164.0)
    assert restored.stats.calls_ended[("in", "answered", "other")] == 1
    assert restored.stats.duration[("in", "person", "other")].total == 60.0
    assert restored.stats.wait[("in", "answered", "other")].total == 4.0
    recorder.close()


def test_snapshots_written_before_the_web_layer_kept_its_counts_are_read(path: Path) -> None:
    store = SqliteStore(path)
    old = fresh_tracker().export_state()
    old["stats"]["requests"] = [[["newCall", "200"], 3]]
    old["stats"]["rejected"] = [["signature", 2]]
    store.snapshot(state_of(old))
    store.close()
    recorder = recorder_on(path, fresh_tracker())
    counts = recorder.requests.read()
    assert counts.requests == {("newCall", "200"): 3}
    assert counts.rejected == {"signature": 2}
    recorder.close()


def test_reset_starts_fresh_and_moves_the_old_file(path: Path) -> None:
    recorder = recorder_on(path, fresh_tracker())
    recorder.event(NewCall("A", "in"), NEW_CALL, 1.0)
    recorder.close()
    fresh = fresh_tracker()
    recorder_on(path, fresh, reset=True).close()
    assert fresh.open_calls == 0
    assert list(path.parent.glob("state.db.*.old"))


def body_of(event: Any) -> bytes:
    """A form body that parses back to `event` (the fields the tracker uses)."""
    fields = [
        (
            "event",
            {NewCall: "newCall", Answer: "answer", Hangup: "hangup"}.get(type(event), "dtmf"),
        ),
        ("callId", event.call_id),
    ]
    if fields[0][1] != "dtmf":
        fields.append(("direction", event.direction))
    if isinstance(event, NewCall):
        fields += [("origCallId", event.orig_call_id or "")] + [("user[]", u) for u in event.users]
    if isinstance(event, Answer) and event.user:
        fields.append(("user", event.user))
    if isinstance(event, Hangup):
        fields.append(("cause", event.cause))
    if isinstance(event, Dtmf):
        fields.append(("dtmf", event.digits))
    return urlencode(fields).encode()


@pytest.mark.parametrize("seed", range(4))
def test_replay_after_any_snapshot_rebuilds_the_same_state(path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
    store = SqliteStore(path)
    recorder = Recorder(fresh_tracker(max_open=15), new_requests(), store)
    now = 0.0
    for step in random_stream(rng, 1500):
        if isinstance(step, float):
            now += step
            recorder.sweep(now)
        else:
            recorder.event(step, body_of(step), now)
        if rng.random() < 0.01:
            store.snapshot(recorder.export)
    expected = recorder.export()
    store.close()

    restored = Recorder(fresh_tracker(max_open=15), new_requests(), SqliteStore(path))
    restored.restore()
    actual = restored.export()
    restored.close()
    assert actual == expected
    assert sum(count for _, count in actual["stats"]["calls_started"]) > 50


def test_rejections_and_errors_survive_without_a_snapshot(path: Path) -> None:
    store = SqliteStore(path)
    recorder = Recorder(fresh_tracker(), new_requests(), store)
    recorder.rejection("signature", 403)
    recorder.rejection("signature", 403)
    recorder.error("hangup")
    recorder.requests.observe(0.01)
    store.close()  # no last snapshot: as after kill -9
    restored = recorder_on(path, fresh_tracker())
    counts = restored.requests.read()
    assert counts.rejected == {"signature": 2}
    assert counts.requests == {("invalid", "403"): 2, ("hangup", "500"): 1}
    # Request durations belong to the process, like its CPU time.
    assert counts.duration.count == 0
    restored.close()


def test_another_programs_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE customers (name TEXT)")
    other.commit()
    other.close()
    with pytest.raises(StateError, match="another program"):
        SqliteStore(path)
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("customers",)]


def test_checkpoints_move_the_log_into_the_database(path: Path) -> None:
    store = SqliteStore(path, snapshot_interval=3600.0)
    for index in range(20):
        keep(store, 1.0, NEW_CALL)
        store.snapshot(state_of({"calls": list(range(2000 + index))}))
    wal = path.with_name(path.name + "-wal")
    grown = wal.stat().st_size
    assert grown > 0
    store.maintain(state_of({}))  # not due: a checkpoint only
    keep(store, 1.0, NEW_CALL)
    store.snapshot(state_of({"calls": []}))
    assert wal.stat().st_size <= grown, "after a checkpoint the log is reused from its start"
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0


def journal_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".journal*"))


def test_snapshots_rotate_the_journal_and_drop_what_they_cover(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 1.0, NEW_CALL)
    store.snapshot(state_of({"n": 1}))
    keep(store, 2.0, ANSWER)
    # The snapshot covered every record of the file it renamed, so that file is gone.
    assert [p.name for p in journal_files(path)] == ["state.db.journal"]
    store.close()
    assert reopened(path) == ({"n": 1}, [ANSWER])


def journal_after(path: Path, *events: bytes) -> Path:
    """The journal file a store left that recorded `events`, one a second, and no snapshot."""
    store = SqliteStore(path)
    for at, body in enumerate(events, start=1):
        keep(store, float(at), body)
    store.close()
    return path.with_name(path.name + ".journal")


def test_a_record_cut_short_by_a_crash_is_dropped(path: Path) -> None:
    journal = journal_after(path, NEW_CALL, ANSWER)
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-10])  # the last write was cut short
    store = SqliteStore(path)
    assert bodies(store) == [NEW_CALL]
    keep(store, 3.0, HANGUP)  # numbered after the last whole one
    store.close()
    assert reopened(path) == (None, [NEW_CALL, HANGUP])


def test_damage_inside_the_journal_is_refused(path: Path) -> None:
    journal = journal_after(path, NEW_CALL, ANSWER)
    damaged = bytearray(journal.read_bytes())
    damaged[40] ^= 0xFF  # inside the first record's body
    journal.write_bytes(bytes(damaged))
    with pytest.raises(StateError, match=r"damaged at byte 0; start with --state\.reset"):
        SqliteStore(path)
    assert journal.read_bytes() == bytes(damaged)


def test_a_sweep_after_the_store_closed_is_refused_cleanly(path: Path) -> None:
    store = SqliteStore(path)
    keep(store, 1.0, NEW_CALL)
    store.close(state_of({"n": 1}))

    # The sweeper may still be running while the exporter stops.
    with pytest.raises(StateError, match="is closed"):
        keep(store, 2.0, None, SWEEP)
    store.maintain(state_of({"n": 2}))

    assert reopened(path) == ({"n": 1}, [])
