"""The journal beside the state database: append-only files of checksummed records.

Records are copied into a shared memory mapping of the current file. A copy is in the
operating system's page cache the moment it is made, where it survives the process dying at
any moment (`kill -9`, the OOM killer), without a system call and without giving up the
interpreter lock, so requests neither wait for each other nor for the kernel. `fsync` after
each record (`--state.sync=full`) extends that to a machine crash. At each snapshot the current
file is cut to its records, renamed and a new one started; a renamed file is deleted once a
snapshot covers every record in it. The new file is made, its space allocated, before the
old one is renamed, so a rotation that fails (a full disk) leaves the old file in use.

The current file is allocated ahead in steps, so its end is zeros; reading stops there.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporter.errors import JournalError

# crc32, seq, kind, at, body length; the checksum covers everything after it.
_HEADER: Final = struct.Struct("<IQBdI")
_CHECKED: Final = struct.Struct("<QBdI")
_CRC: Final = struct.Struct("<I")
_SEQ: Final = struct.Struct("<Q")
HEADER_SIZE: Final = _HEADER.size
# Allocated ahead, then doubled: a journal between snapshots is a few MiB at most.
FIRST_SIZE: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Record:
    """One journal record."""

    seq: int
    kind: int
    at: float
    body: bytes | None


class JournalFiles:
    """`<state>.journal`, written now, and `<state>.journal.<last seq>` files renamed before."""

    def __init__(self, state_path: Path, flush_each: bool, snapshot_position: int = 0) -> None:
        """Read and open the files of `state_path`; raise JournalError if they are damaged or
        their first record does not follow the snapshot at `snapshot_position`, OSError if
        they cannot be read or written."""
        # Not "-journal": SQLite would take that for its own rollback journal.
        self.current = state_path.with_name(state_path.name + ".journal")
        # The next current file while it is made; outside the glob of renamed files.
        self._next = state_path.with_name(state_path.name + ".journal-next")
        self._next.unlink(missing_ok=True)  # left by a crash in the middle of a rotation
        self._flush_each = flush_each
        self._lock = threading.Lock()  # guards the file, its mapping and the end
        self._sync_lock = threading.Lock()  # one fsync at a time
        self.records = self._read_all()
        self._check_follows(state_path, snapshot_position)
        self._last = self._synced = self.last_seq
        self._fd, self._end, self._map = _open(self.current)
        self._wanted = 0  # the size the last append needed

    @property
    def last_seq(self) -> int:
        """The highest sequence number found when the files were opened."""
        return max((record.seq for record in self.records), default=0)

    def append(self, seq: int, kind: int, at: float, body: bytes | None) -> None:
        """Add one record, in order; raise OSError if the file cannot grow.

        Once this returns the record survives the process; `write_through(seq)` is needed only
        to survive the machine.
        """
        payload = body or b""
        checked = _CHECKED.pack(seq, kind, at, len(payload)) + payload
        record = _CRC.pack(zlib.crc32(checked)) + checked
        with self._lock:
            start = self._end
            end = start + len(record)
            if end > len(self._map):
                self._wanted = end
                self._grow(end)
            # A copy, not os.write: bench/RESULTS.md, "Journal records in a shared mapping".
            self._map[start:end] = record
            self._end = end
            self._last = seq

    def make_room(self) -> None:
        """Grow the file as far as the last append needed; raise OSError if it still cannot."""
        with self._lock:
            if self._wanted > len(self._map):
                self._grow(self._wanted)

    def write_through(self, seq: int) -> None:
        """Return once record `seq` is as durable as asked for: flushed, with `flush_each`.

        Called without the tracker's lock, since `fsync` releases the interpreter lock. Whoever
        flushes takes everything appended so far, so a busy moment costs one flush.
        """
        if not self._flush_each:
            return
        with self._sync_lock:
            if self._synced >= seq:
                return
            with self._lock:
                last = self._last
                fd = os.dup(self._fd)  # rotate may close the file meanwhile
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._synced = last

    def rotate(self, last_seq: int) -> None:
        """Rename the current file after its last record and start a new one; raise OSError,
        keeping the current file in use, if the new one cannot be made."""
        self.write_through(last_seq)
        with self._lock:
            try:
                fd, end, new_map = _open(self._next, truncate=True)
            except OSError:
                self._next.unlink(missing_ok=True)  # it would hold space allocated in vain
                raise
            try:
                self._rename_current(last_seq)
            except OSError:
                _close(fd, new_map, flush=False)
                self._next.unlink(missing_ok=True)
                raise
            old = self._fd, self._map, self._end
            self._fd, self._end, self._map = fd, end, new_map
            # Its records were written through above; if it cannot be cut, its zeros read as
            # nothing, so the rotation stands either way.
            with contextlib.suppress(OSError):
                _close(*old, flush=self._flush_each)

    def drop_through(self, position: int) -> None:
        """Delete renamed files whose records a snapshot at `position` all covers."""
        for path in self.rotated():
            if int(path.name.rsplit(".", 1)[1]) <= position:
                path.unlink(missing_ok=True)

    def rotated(self) -> list[Path]:
        """Renamed files, oldest first."""
        return sorted(self.current.parent.glob(self.current.name + ".*"))

    def close(self) -> None:
        """Flush what `flush_each` asks for and close the current file, cut to its records."""
        try:
            self.write_through(self._last)
        finally:
            with self._lock:
                _close(self._fd, self._map, self._end, flush=self._flush_each)

    def _grow(self, needed: int) -> None:
        size = len(self._map)
        while size < needed:
            size *= 2
        _allocate(self._fd, size)
        grown = mmap.mmap(self._fd, size)  # before the old one goes, in case it cannot be made
        self._map.close()
        self._map = grown

    def _rename_current(self, last_seq: int) -> None:
        """Rename the current file after its last record and the next one to current."""
        rotated = self._rotated_name(last_seq) if self.current.exists() else None
        if rotated is not None:
            self.current.rename(rotated)
        try:
            self._next.rename(self.current)
        except OSError:
            if rotated is not None:
                rotated.rename(self.current)
            raise

    def _check_follows(self, state_path: Path, position: int) -> None:
        """Refuse a journal that starts after records the snapshot does not hold."""
        first = self.records[0].seq if self.records else position + 1
        if first <= position + 1:
            return
        held = f"a snapshot up to record {position}" if position else "no snapshot"
        raise JournalError(
            f"journal {self.current} starts at record {first}, but state file {state_path} "
            f"holds {held}: records {position + 1} to {first - 1} are missing (was the state "
            "file emptied, deleted or replaced?)"
        )

    def _rotated_name(self, last_seq: int) -> Path:
        return self.current.with_name(f"{self.current.name}.{last_seq:020d}")

    def _read_all(self) -> list[Record]:
        records: list[Record] = []
        for path in self.rotated():
            records += _read(path, repair_tail=False)
        if self.current.exists():
            records += _read(self.current, repair_tail=True)
        records.sort(key=lambda record: record.seq)
        return records


def _open(path: Path, truncate: bool = False) -> tuple[int, int, mmap.mmap]:
    """A journal file, where its records end (reading cut it there), and its mapping; raise
    OSError naming the file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o600)
    try:
        end = os.fstat(fd).st_size
        _allocate(fd, max(FIRST_SIZE, end))
        return fd, end, mmap.mmap(fd, 0)
    except OSError as error:
        os.close(fd)
        raise OSError(error.errno, error.strerror, str(path)) from None


def _close(fd: int, mapping: mmap.mmap, end: int | None = None, *, flush: bool) -> None:
    """Unmap and close a journal file, cut to `end` first if given, and flushed if asked."""
    try:
        mapping.close()
        if end is not None:
            os.ftruncate(fd, end)
        if flush:
            os.fsync(fd)
    finally:
        os.close(fd)


def _allocate(fd: int, size: int) -> None:
    """Make the file `size` bytes long, its new blocks reserved.

    Reserved now, a full disk is an OSError here rather than a SIGBUS when a record is copied
    into a page the file system cannot back.
    """
    current = os.fstat(fd).st_size
    if size <= current:
        return
    try:
        os.posix_fallocate(fd, current, size - current)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # A nearly full disk takes part of a write and refuses the rest at the next one.
        while current < size:
            written = os.pwrite(fd, bytes(size - current), current)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
            current += written


def _read(path: Path, repair_tail: bool) -> list[Record]:
    """The records of one file; with `repair_tail`, cut it after its last whole record."""
    data = path.read_bytes()
    # Past the last byte that is not zero there are no records, only space allocated ahead.
    used = len(data.rstrip(b"\0"))
    records, offset = [], 0
    while offset < used:
        record = _record_at(data, offset)
        if record is not None:
            records.append(record)
            offset += _HEADER.size + len(record.body or b"")
            continue
        last_seq = records[-1].seq if records else 0
        if not (repair_tail and _is_tail(data, offset, used, last_seq)):
            raise JournalError(f"journal file {path} is damaged at byte {offset}")
        break  # a record cut short by a crash: it was never acknowledged
    if repair_tail and offset < len(data):
        os.truncate(path, offset)
    return records


def _record_at(data: bytes, offset: int) -> Record | None:
    """The whole, intact record at `offset`, or None."""
    end = offset + _HEADER.size
    if end > len(data):
        return None
    crc, seq, kind, at, length = _HEADER.unpack_from(data, offset)
    body_end = end + length
    if seq == 0 or body_end > len(data) or zlib.crc32(data[offset + 4 : body_end]) != crc:
        return None
    return Record(seq, kind, at, data[end:body_end] if length else None)


def _is_tail(data: bytes, offset: int, used: int, last_seq: int) -> bool:
    """Whether the damage at `offset` can only be the last record, cut short.

    One record is written at a time, so a record cut short by a crash has no whole record
    after it; damage with a whole record after it is damage. Only plausible numbers get their
    checksum computed, which keeps a scan over garbage linear.
    """
    most = last_seq + (used - offset) // _HEADER.size + 1
    # A record may end in zeros (a sweep's has no body), so it can start past `used - header`.
    for later in range(offset + 1, min(used, len(data) - _HEADER.size + 1)):
        seq = _SEQ.unpack_from(data, later + _CRC.size)[0]
        if last_seq < seq <= most and _record_at(data, later) is not None:
            return False
    return True
