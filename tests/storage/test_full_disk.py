"""A full disk, on a small file system of its own: events refused while it lasts, not after."""

from __future__ import annotations

import logging
import signal
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import webtest

from exporter.errors import StateError
from exporter.storage.health import JOURNAL, SNAPSHOT
from exporter.storage.sqlite import SqliteStore
from exporter.storage.store import EVENT, Entry, State
from tests.conftest import FakeClock
from tests.http_helpers import FORM, fetch, free_port, new_call, registry_samples, value
from tests.in_process import InProcess, build
from tests.programs import EXPORTER, Start, clean_env
from tests.storage.conftest import SmallDisk

# Large records fill the journal's first MiB in a hundred-odd requests.
PAD: Final = "x" * 8000
NO_SPACE: Final = "No space left on device"


def state_of(value: State) -> Any:
    return lambda: value


def keep(store: SqliteStore, number: int) -> None:
    store.record(Entry(EVENT, float(number), f"{number} {PAD}".encode()), lambda: None)


def keep_until_refused(store: SqliteStore, start: int = 0) -> int:
    """Record until the journal cannot grow; the number of the refused record."""
    for number in range(start, start + 1000):
        try:
            keep(store, number)
        except StateError:
            return number
    pytest.fail("the journal never filled the disk")


def reopened_bodies(path: Path) -> list[bytes | None]:
    store = SqliteStore(path)
    try:
        return [entry.body for entry in store.load().entries]
    finally:
        store.close()


class Exporter:
    """An exporter's web app in this process, its state on `disk`."""

    def __init__(self, disk: SmallDisk) -> None:
        self.state = disk.path / "state.db"
        self.store = SqliteStore(self.state)
        self.parts: InProcess = build(store=self.store, clock=lambda: 1_800_000_000.0)
        self.app = webtest.TestApp(self.parts.app)
        self.posted = 0

    def post(self) -> int:
        """Post the next newCall; its status."""
        self.posted += 1
        body = new_call(f"c{self.posted}", pad=PAD)
        return int(
            self.app.post("/webhook", body, content_type=FORM, expect_errors=True).status_int
        )

    def ready(self) -> tuple[int, str]:
        reply = self.app.get("/-/ready", expect_errors=True)
        return reply.status_int, reply.text

    def metric(self, name: str, **labels: str) -> float:
        return value(registry_samples(self.parts.registry), name, **labels)


def test_a_full_disk_refuses_events_until_space_is_freed_without_a_restart(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = Exporter(small_disk)
    assert exporter.ready() == (200, "Ready\n")
    small_disk.fill()

    statuses = [exporter.post() for _ in range(300)]

    assert 500 in statuses, "the journal never had to grow"
    acknowledged = statuses.index(500)
    assert set(statuses[acknowledged:]) == {500}
    status, reason = exporter.ready()
    assert status == 503
    assert f"{exporter.state}.journal" in reason
    assert NO_SPACE in reason
    refused = len(statuses) - acknowledged
    assert exporter.metric("sipgate_state_write_errors_total", part="journal") >= refused
    assert exporter.metric("sipgate_state_write_errors_total", part="snapshot") == 0

    small_disk.free()

    assert exporter.post() == 200, "the next request grows the journal again"
    assert exporter.ready() == (200, "Ready\n")
    assert exporter.metric("sipgate_calls_total", direction="in") == acknowledged + 1
    # The refused requests' tracebacks are not logged: the episode is, once.
    assert not [record for record in caplog.records if record.exc_info]
    exporter.store.close()
    assert len(reopened_bodies(exporter.state)) == acknowledged + 1


def test_readiness_recovers_without_traffic(small_disk: SmallDisk) -> None:
    exporter = Exporter(small_disk)
    small_disk.fill()
    while exporter.post() == 200:
        pass
    exporter.parts.recorder.maintain()  # the sweeper, about once a second
    assert exporter.ready()[0] == 503, "still full"

    small_disk.free()
    exporter.parts.recorder.maintain()

    assert exporter.ready() == (200, "Ready\n")
    exporter.store.close()


def test_requests_refused_on_a_full_disk_are_kept_once_it_has_room(small_disk: SmallDisk) -> None:
    exporter = Exporter(small_disk)
    small_disk.fill()
    while exporter.post() == 200:
        pass
    exporter.post()
    refused = exporter.metric("sipgate_webhook_requests_total", event="newCall", code="500")
    assert refused == 2

    small_disk.free()
    exporter.parts.recorder.maintain()
    exporter.store.close()  # without a last snapshot, as if killed

    again = Exporter(small_disk)
    again.parts.recorder.restore()
    assert again.metric("sipgate_webhook_requests_total", event="newCall", code="500") == refused
    again.store.close()


def test_one_warning_per_episode_and_one_line_when_it_ends(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_disk.path / "state.db"
    store = SqliteStore(state)
    small_disk.fill()
    caplog.set_level(logging.INFO, logger="exporter.storage")
    refused = keep_until_refused(store)
    for _ in range(5):
        with pytest.raises(StateError, match=NO_SPACE):
            keep(store, refused)

    small_disk.free()
    keep(store, refused)
    keep(store, refused + 1)

    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    (warning, started), (info, ended) = lines
    assert warning == logging.WARNING
    assert f"cannot write the journal {state}.journal: {NO_SPACE}" in started
    assert "refused with 500" in started
    assert info == logging.INFO
    assert "journal can be written again" in ended
    assert "6 failed writes" in ended
    assert store.health.write_errors() == {JOURNAL: 6, SNAPSHOT: 0}
    store.close()


def test_a_rotation_on_a_full_disk_leaves_the_journal_in_use(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(0.0)
    state = small_disk.path / "state.db"
    store = SqliteStore(state, snapshot_interval=30.0, clock=clock)
    for number in range(3):
        keep(store, number)
    # Room for the snapshot in the database, not for a new journal file.
    small_disk.fill(leave=256 << 10)

    with pytest.raises(StateError, match=f"cannot rotate the journal .*: {NO_SPACE}"):
        store.snapshot(state_of({"n": 3}))
    keep(store, 3)  # the journal goes on in its old file
    clock.advance(30.0)
    store.maintain(state_of({"n": 4}))  # fails again: counted and logged, not raised

    assert store.health.is_failing(SNAPSHOT)
    assert store.health.write_errors()[SNAPSHOT] == 1
    assert not store.health.is_failing(JOURNAL)
    assert not list(small_disk.path.glob("state.db.journal-*")), "no half-made file is left"
    small_disk.free()
    keep(store, 4)
    clock.advance(30.0)
    store.maintain(state_of({"n": 5}))
    assert not store.health.is_failing(SNAPSHOT)
    keep(store, 5)
    store.close()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"cannot rotate the journal {state}.journal: {NO_SPACE}; events are still "
        "journaled; the snapshot is tried again at the next interval"
    ]

    reopened = SqliteStore(state)
    saved = reopened.load()
    assert saved.state == {"n": 5}
    assert [entry.body for entry in saved.entries] == [f"5 {PAD}".encode()]
    reopened.close()


def test_a_full_disk_at_stop_closes_the_store_and_keeps_the_journal(small_disk: SmallDisk) -> None:
    state = small_disk.path / "state.db"
    store = SqliteStore(state)
    for number in range(3):
        keep(store, number)
    small_disk.fill()

    with pytest.raises(StateError, match=r"final snapshot failed: .*journal keeps every event"):
        store.close(state_of({"n": 3}))

    # Closed and unlocked: another store opens the same files, with every record.
    small_disk.free()
    assert reopened_bodies(state) == [f"{number} {PAD}".encode() for number in range(3)]


# --- The exporter process -----------------------------------------------------------------------


def exporter_args(state: Path) -> list[str]:
    return [
        *EXPORTER,
        f"--web.listen-address=127.0.0.1:{free_port()}",
        f"--state.path={state}",
        "--webhook.verify-signature=false",  # these tests post unsigned events
    ]


def one_error_line(stderr: str) -> str:
    """The one error an exporter logged, with no traceback."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_start_on_a_full_disk_is_refused_with_one_line(
    small_disk: SmallDisk, start: Start, existing: bool
) -> None:
    state = small_disk.path / "state.db"
    if existing:
        program = start(f"--state.path={state}")
        program.post(new_call("A"))
        program.process.send_signal(signal.SIGTERM)
        assert program.process.wait(timeout=20) == 0, program.stderr
    small_disk.fill()

    result = subprocess.run(
        exporter_args(state), capture_output=True, text=True, timeout=30, env=clean_env()
    )

    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert str(state) in line
    # SQLite says "database or disk is full", or "disk I/O error" and the exporter adds why.
    assert NO_SPACE in line or "is full" in line, line
    assert "unreadable" not in line, "the file is fine, the disk is full"
    assert "--state.reset" not in line


def test_a_stop_on_a_full_disk_says_so_and_keeps_every_event(
    small_disk: SmallDisk, start: Start
) -> None:
    # `start` is set up after the disk, so its exporters are killed before the disk goes.
    state = small_disk.path / "state.db"
    program = start(f"--state.path={state}")
    for number in range(3):
        program.post(new_call(f"S{number}"))
    small_disk.fill()

    program.process.send_signal(signal.SIGTERM)

    assert program.process.wait(timeout=20) == 1, program.stderr
    line = one_error_line(program.stderr)
    assert f"the final snapshot failed: cannot write a snapshot to {state}" in line
    assert "the journal keeps every event for the next start" in line
    small_disk.free()
    restarted = start(f"--state.path={state}")
    assert value(restarted.samples(), "sipgate_calls_total", direction="in") == 3
    assert fetch(restarted.base + "/-/ready").status == 200


def test_a_stop_with_room_for_the_snapshot_but_not_a_new_journal_is_clean(
    small_disk: SmallDisk,
) -> None:
    state = small_disk.path / "state.db"
    store = SqliteStore(state)
    for number in range(110):  # most of the journal's first MiB: cutting it frees little
        keep(store, number)
    small_disk.fill(leave=256 << 10)

    store.close(state_of({"n": 110}))  # the snapshot holds everything: a new journal can wait

    small_disk.free()
    reopened = SqliteStore(state)
    saved = reopened.load()
    assert (saved.state, list(saved.entries)) == ({"n": 110}, [])
    reopened.close()
