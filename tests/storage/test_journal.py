"""The journal file: records copied into a shared mapping, read back after a crash."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.errors import JournalError, StateError
from exporter.storage.journal import (
    FIRST_SIZE,
    HEADER_SIZE,
    JournalFiles,
)
from exporter.storage.sqlite import SqliteStore
from tests.programs import clean_env

BODY = b"event=newCall&direction=in&callId=A&from=4921&to=4922"
# A record written by killed_after_appending: its body is BODY and a digit.
NUMBERED = HEADER_SIZE + len(BODY) + 1


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter, the way a crashing exporter process would."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=Path(__file__).resolve().parents[2],
        env=clean_env(STATE=str(tmp_path / "state.db")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def loaded_entries(tmp_path: Path) -> int:
    """How many journal entries a new store on the state file in `tmp_path` loads."""
    store = SqliteStore(tmp_path / "state.db")
    try:
        return len(list(store.load().entries))
    finally:
        store.close()


def killed_after_appending(tmp_path: Path, bodies: int) -> Path:
    """A process that appends records and is then killed with SIGKILL, closing nothing."""
    result = run_python(
        f"""
        import os, signal
        from pathlib import Path
        from exporter.storage.journal import JournalFiles
        journal = JournalFiles(Path(os.environ["STATE"]), flush_each=False)
        for seq in range(1, {bodies} + 1):
            journal.append(seq, 1, float(seq), {BODY!r} + str(seq).encode())
        journal.append({bodies} + 1, 2, 99.0, None)  # a sweep, whose record ends in zeros
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        tmp_path,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    return tmp_path / "state.db.journal"


def test_records_survive_the_process_being_killed(tmp_path: Path) -> None:
    journal_path = killed_after_appending(tmp_path, 3)
    assert journal_path.stat().st_size >= FIRST_SIZE, "the space allocated ahead is still there"
    journal = JournalFiles(tmp_path / "state.db", flush_each=False)
    assert [(r.seq, r.kind, r.at) for r in journal.records] == [
        (1, 1, 1.0),
        (2, 1, 2.0),
        (3, 1, 3.0),
        (4, 2, 99.0),
    ]
    assert [r.body for r in journal.records] == [BODY + b"1", BODY + b"2", BODY + b"3", None]
    journal.append(5, 1, 5.0, BODY)
    journal.close()
    whole = 3 * NUMBERED + HEADER_SIZE + HEADER_SIZE + len(BODY)
    assert journal_path.stat().st_size == whole, "closing cuts the file to its records"
    assert [r.seq for r in JournalFiles(tmp_path / "state.db", False).records] == [1, 2, 3, 4, 5]


def test_a_record_cut_short_before_the_zeros_is_dropped(tmp_path: Path) -> None:
    journal_path = killed_after_appending(tmp_path, 2)
    data = bytearray(journal_path.read_bytes())
    sweep_end = 2 * NUMBERED + HEADER_SIZE
    data[sweep_end - 8 : sweep_end] = bytes(8)  # the copy of the last record stopped early
    journal_path.write_bytes(bytes(data))
    journal = JournalFiles(tmp_path / "state.db", flush_each=False)
    assert [r.seq for r in journal.records] == [1, 2]
    journal.close()
    assert journal_path.stat().st_size == 2 * NUMBERED


def test_damage_with_a_whole_record_after_it_is_refused(tmp_path: Path) -> None:
    journal_path = killed_after_appending(tmp_path, 2)
    data = bytearray(journal_path.read_bytes())
    data[30] ^= 0xFF  # inside the first record's body
    journal_path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="damaged at byte 0"):
        JournalFiles(tmp_path / "state.db", flush_each=False)
    assert journal_path.read_bytes() == bytes(data), "a refused file is left as it was"


@pytest.mark.parametrize("flush_each", [False, True])
def test_the_file_grows_past_the_space_allocated_ahead(tmp_path: Path, flush_each: bool) -> None:
    journal = JournalFiles(tmp_path / "state.db", flush_each)
    body = bytes(range(256)) * 4
    count = 3 * FIRST_SIZE // len(body)
    for seq in range(1, count + 1):
        journal.append(seq, 1, float(seq), body)
        journal.write_through(seq)
    journal.close()
    records = JournalFiles(tmp_path / "state.db", flush_each).records
    assert [r.seq for r in records] == list(range(1, count + 1))
    assert all(r.body == body for r in records)


def test_a_full_disk_refuses_events_instead_of_crashing(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the file system refuse to grow the journal, as a full disk would.
    result = run_python(
        f"""
        import os, resource, signal
        from pathlib import Path
        from exporter.errors import StateError
        from exporter.storage.sqlite import SqliteStore
        from exporter.storage.store import EVENT, Entry
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        store = SqliteStore(Path(os.environ["STATE"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, ({FIRST_SIZE} + 4096,) * 2)
        written = 0
        try:
            while True:
                store.record(Entry(EVENT, 1.0, b"x" * 1000), lambda: None)
                written += 1
        except StateError as error:
            print(written, error)
        try:
            store.record(Entry(EVENT, 1.0, b"y"), lambda: None)
        except StateError:
            print("refused after")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    written, message = first.split(" ", 1)
    assert 900 < int(written) < FIRST_SIZE // 1000, "records fill the space allocated ahead"
    assert message.startswith("cannot write the journal")
    assert second == "refused after"
    assert result.stderr.count("cannot write the journal") == 1, "once, when it started"
    kept = loaded_entries(tmp_path)
    assert kept == int(written), "every record written before the failure is kept"


def test_a_file_system_without_fallocate_that_fills_up_refuses_instead_of_crashing(
    tmp_path: Path,
) -> None:
    # Zeros are written where fallocate is missing; the limit cuts the first write short, as
    # a nearly full disk would. A mapping past the end of the file would crash with SIGBUS.
    result = run_python(
        f"""
        import errno, os, resource, signal
        from pathlib import Path
        from exporter.errors import StateError
        from exporter.storage.sqlite import SqliteStore
        from exporter.storage.store import EVENT, Entry
        def unsupported(fd, offset, length):
            raise OSError(errno.EOPNOTSUPP, "not supported")
        os.posix_fallocate = unsupported
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        store = SqliteStore(Path(os.environ["STATE"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, ({FIRST_SIZE} + {FIRST_SIZE} // 2,) * 2)
        try:
            while True:
                store.record(Entry(EVENT, 1.0, b"x" * 1000), lambda: None)
        except StateError as error:
            print(error)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cannot write the journal")


def test_state_error_names_the_damage(tmp_path: Path) -> None:
    journal_path = killed_after_appending(tmp_path, 2)
    data = bytearray(journal_path.read_bytes())
    data[5] ^= 0xFF  # the first record's sequence number
    journal_path.write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"damaged at byte 0; start with --state\.reset"):
        SqliteStore(tmp_path / "state.db")


def test_a_full_disk_answers_500_counts_it_and_keeps_what_was_acknowledged(
    tmp_path: Path,
) -> None:
    result = run_python(
        f"""
        import os, resource
        from pathlib import Path
        import webtest
        from exporter.storage.sqlite import SqliteStore
        from tests.in_process import build
        store = SqliteStore(Path(os.environ["STATE"]))
        app = webtest.TestApp(build(store=store, clock=lambda: 1.0).app)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({FIRST_SIZE} + 4096,) * 2)
        pad = "x" * 900
        statuses = []
        for number in range(1200):
            body = f"event=newCall&direction=in&callId=c{{number}}&from=1&to=2&user%5B%5D={{pad}}"
            reply = app.post("/webhook", body, content_type="application/x-www-form-urlencoded",
                             expect_errors=True)
            statuses.append(reply.status_int)
        metrics = app.get("/metrics").text
        print(statuses.count(200), statuses.index(500), set(statuses))
        print(next(line for line in metrics.splitlines()
                   if line.startswith('sipgate_webhook_requests_total{{code="500"')))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    counts, errors = result.stdout.splitlines()
    acknowledged, first_error, statuses = counts.split(" ", 2)
    assert statuses == "{200, 500}"
    assert int(acknowledged) == int(first_error), "after the first failure every event is refused"
    assert errors.endswith(f" {1200 - int(acknowledged)}.0"), errors
    assert "cannot write the journal" in result.stderr
    kept = loaded_entries(tmp_path)
    assert kept == int(acknowledged), "every acknowledged event is in the journal"


def test_damage_before_a_last_record_that_ends_in_zeros_is_still_damage(tmp_path: Path) -> None:
    journal_path = killed_after_appending(tmp_path, 2)  # records 1 and 2, then a sweep
    data = bytearray(journal_path.read_bytes())
    data[NUMBERED + 30] ^= 0xFF  # inside record 2: the sweep after it is whole
    journal_path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"damaged at byte {NUMBERED}"):
        JournalFiles(tmp_path / "state.db", flush_each=False)
