"""The state file: journal, snapshots, replay, locking and unreadable files."""

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
from exporter.metrics import new_statistics
from exporter.storage.snapshots import Snapshotter, open_durable, replay
from exporter.storage.sqlite import (
    EVENT,
    SWEEP,
    StateStore,
    move_aside,
)
from tests.conftest import EXPIRE_AFTER, FORWARD_GRACE
from tests.test_invariant import random_stream

NEW_CALL = b"event=newCall&direction=in&callId=A&from=4921&to=4922&user%5B%5D=Alice"
ANSWER = b"event=answer&direction=in&callId=A&user=Alice"
HANGUP = b"event=hangup&direction=in&callId=A&cause=normalClearing"


def fresh_tracker(max_open: int | None = None) -> CallTracker:
    return CallTracker(new_statistics(), FORWARD_GRACE, EXPIRE_AFTER, max_open)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.db"


def test_journal_survives_reopening(path: Path) -> None:
    store = StateStore(path)
    store.record_event(10.0, NEW_CALL)
    store.record_sweep(11.0)
    assert store.position() == 2
    store.close()
    store = StateStore(path)
    snapshot, entries = store.load()
    assert snapshot is None
    assert [(e.kind, e.at, e.body) for e in entries] == [
        (EVENT, 10.0, NEW_CALL),
        (SWEEP, 11.0, None),
    ]
    assert store.position() == 2
    assert store.journal_length == 2
    store.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_snapshot_replaces_the_journal_it_includes(path: Path) -> None:
    store = StateStore(path)
    store.record_event(1.0, NEW_CALL)
    store.wait_durable(store.record_event(2.0, ANSWER))
    store.save_snapshot({"marker": 1}, position=1)
    assert store.journal_length == 1
    store.record_event(3.0, HANGUP)
    store.close()
    store = StateStore(path)
    snapshot, entries = store.load()
    assert snapshot == {"marker": 1}
    assert [e.body for e in entries] == [ANSWER, HANGUP]
    store.close()


def test_records_a_snapshot_already_includes_are_skipped_even_if_written_after_it(
    path: Path,
) -> None:
    store = StateStore(path)
    first = store.record_event(1.0, NEW_CALL)
    second = store.record_event(2.0, ANSWER)
    # The snapshot may be taken before the writer thread committed what it includes.
    store.save_snapshot({"marker": 2}, position=second)
    store.wait_durable(second)
    third = store.record_event(3.0, HANGUP)
    store.close()
    assert (first, second, third) == (1, 2, 3)
    store = StateStore(path)
    snapshot, entries = store.load()
    assert snapshot == {"marker": 2}
    assert [e.body for e in entries] == [HANGUP]
    assert store.position() == 3
    store.close()


def test_second_store_on_the_same_file_is_refused(path: Path) -> None:
    first = StateStore(path)
    with pytest.raises(StateError, match="in use by another exporter"):
        StateStore(path)
    first.close()
    StateStore(path).close()


@pytest.mark.parametrize("content", [b"garbage" * 1000, b"SQLite format 3\x00" + b"\x01" * 5000])
def test_unreadable_file_is_refused_and_left_alone(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StateError, match=r"unreadable .*--state\.reset"):
        StateStore(path)
    assert path.read_bytes() == content
    StateStore(path.with_name("other.db")).close()  # the lock was released


def test_truncated_database_is_refused(path: Path) -> None:
    store = StateStore(path)
    for index in range(2000):
        store.record_event(float(index), NEW_CALL.replace(b"callId=A", f"callId={index}".encode()))
    store.save_snapshot({"calls": list(range(5000))}, store.position())
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError, match="unreadable"):
        StateStore(path)


def test_move_aside_keeps_the_old_bytes(path: Path) -> None:
    store = StateStore(path)
    store.record_event(1.0, NEW_CALL)
    store.close()
    original = path.read_bytes()
    moved = move_aside(path)
    assert moved is not None
    assert moved.name.startswith("state.db.")
    assert moved.name.endswith(".old")
    assert moved.read_bytes() == original
    assert not path.exists()
    assert move_aside(path) is None


def test_durable_tracker_restores_calls_and_statistics(path: Path) -> None:
    tracker = fresh_tracker()
    store = open_durable(tracker, path, "normal", reset=False)
    tracker.handle(NewCall("A", "in", users=("Alice",)), 100.0, NEW_CALL)
    tracker.handle(Answer("A", "in", user="Alice"), 104.0, ANSWER)
    store.close()

    restored = fresh_tracker()
    store = open_durable(restored, path, "normal", reset=False)
    assert restored.open_calls == 1
    assert restored.stats.requests[("newCall", "200")] == 1
    restored.handle(Hangup("A", "in", cause="normalClearing"), 164.0, HANGUP)
    assert restored.stats.calls_ended[("in", "answered", "other")] == 1
    assert restored.stats.duration[("in", "person", "other")].total == 60.0
    assert restored.stats.wait[("in", "answered", "other")].total == 4.0
    store.close()


def test_reset_starts_fresh_and_moves_the_old_file(path: Path) -> None:
    tracker = fresh_tracker()
    store = open_durable(tracker, path, "normal", reset=False)
    tracker.handle(NewCall("A", "in"), 1.0, NEW_CALL)
    store.close()
    fresh = fresh_tracker()
    open_durable(fresh, path, "normal", reset=True).close()
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
    tracker = fresh_tracker(max_open=15)
    store = open_durable(tracker, path, "normal", reset=False)
    snapshotter = Snapshotter(tracker, store, interval=3600.0)
    now = 0.0
    for step in random_stream(rng, 1500):
        if isinstance(step, float):
            now += step
            tracker.sweep(now)
        else:
            tracker.handle(step, now, body_of(step))
        if rng.random() < 0.01:
            snapshotter.snapshot()
    expected, _ = tracker.export_state()
    store.close()

    restored = fresh_tracker(max_open=15)
    store = StateStore(path)
    replay(restored, store)
    store.close()
    actual, _ = restored.export_state()
    assert actual == expected
    assert sum(count for _, count in actual["stats"]["calls_started"]) > 50


def test_rejections_and_errors_survive_without_a_snapshot(path: Path) -> None:
    tracker = fresh_tracker()
    store = open_durable(tracker, path, "normal", reset=False)
    tracker.record_rejection("signature", 403)
    tracker.record_rejection("signature", 403)
    tracker.record_error("hangup")
    tracker.observe_request(0.01)
    store.close()
    restored = fresh_tracker()
    open_durable(restored, path, "normal", reset=False).close()
    assert restored.stats.rejected == {"signature": 2}
    assert restored.stats.requests == {("invalid", "403"): 2, ("hangup", "500"): 1}
    # Request durations belong to the process, like its CPU time.
    assert restored.stats.request_duration.count == 0


def test_another_programs_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE customers (name TEXT)")
    other.commit()
    other.close()
    with pytest.raises(StateError, match="another program"):
        StateStore(path)
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("customers",)]


def test_checkpoints_move_the_log_into_the_database(path: Path) -> None:
    store = StateStore(path)
    for index in range(20):
        store.save_snapshot({"calls": list(range(2000 + index))}, store.record_event(1.0, NEW_CALL))
    wal = path.with_name(path.name + "-wal")
    grown = wal.stat().st_size
    assert grown > 0
    store.checkpoint()
    store.save_snapshot({"calls": []}, store.position())
    assert wal.stat().st_size <= grown, "after a checkpoint the log is reused from its start"
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0


def journal_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".journal*"))


def test_snapshots_rotate_the_journal_and_drop_what_they_cover(path: Path) -> None:
    store = StateStore(path)
    first = store.record_event(1.0, NEW_CALL)
    store.save_snapshot({"n": 1}, first)
    late = store.record_event(2.0, ANSWER)  # after the first snapshot
    # The first snapshot covered every record of the file it renamed, so that file is gone.
    assert [p.name for p in journal_files(path)] == ["state.db.journal"]
    store.save_snapshot({"n": 2}, late - 1)  # a snapshot that does not cover the late record
    assert [p.name for p in journal_files(path)] == [
        "state.db.journal",
        f"state.db.journal.{late:020d}",
    ]
    store.close()
    store = StateStore(path)
    snapshot, entries = store.load()
    assert snapshot == {"n": 2}
    assert [e.body for e in entries] == [ANSWER]
    store.close()


def test_a_record_cut_short_by_a_crash_is_dropped(path: Path) -> None:
    store = StateStore(path)
    store.record_event(1.0, NEW_CALL)
    store.record_event(2.0, ANSWER)
    store.close()
    journal = path.with_name(path.name + ".journal")
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-10])  # the last write was cut short
    store = StateStore(path)
    _, entries = store.load()
    assert [e.body for e in entries] == [NEW_CALL]
    assert store.record_event(3.0, HANGUP) == 2  # numbering goes on after the last whole one
    store.close()
    store = StateStore(path)
    _, entries = store.load()
    assert [e.body for e in entries] == [NEW_CALL, HANGUP]
    store.close()


def test_damage_inside_the_journal_is_refused(path: Path) -> None:
    store = StateStore(path)
    store.record_event(1.0, NEW_CALL)
    store.record_event(2.0, ANSWER)
    store.close()
    journal = path.with_name(path.name + ".journal")
    damaged = bytearray(journal.read_bytes())
    damaged[40] ^= 0xFF  # inside the first record's body
    journal.write_bytes(bytes(damaged))
    with pytest.raises(StateError, match=r"damaged at byte 0; start with --state\.reset"):
        StateStore(path)
    assert journal.read_bytes() == bytes(damaged)
