"""The journal beside the state database: append-only files of checksummed records.

One `os.write` per record puts it in the operating system's page cache, where it survives the
process dying at any moment (`kill -9`, the OOM killer), for a few microseconds and without
waiting for other requests; `fsync` after each write (`--state.sync=full`) extends that to a
machine crash. At each snapshot the current file is renamed and a new one started; a renamed
file is deleted once a snapshot covers every record in it.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# crc32, seq, kind, at, body length; the checksum covers everything after it.
_HEADER: Final = struct.Struct("<IQBdI")
_CHECKED: Final = struct.Struct("<QBdI")


class JournalError(Exception):
    """A journal file is damaged somewhere other than at its very end."""


@dataclass(frozen=True, slots=True)
class Record:
    """One journal record."""

    seq: int
    kind: int
    at: float
    body: bytes | None


class JournalFiles:
    """`<state>.journal`, written now, and `<state>.journal.<last seq>` files renamed before."""

    def __init__(self, state_path: Path, flush_each: bool) -> None:
        # Not "-journal": SQLite would take that for its own rollback journal.
        self.current = state_path.with_name(state_path.name + ".journal")
        self._flush_each = flush_each
        self._lock = threading.Lock()  # guards the pending bytes
        self._write_lock = threading.Lock()  # one write at a time, in order
        self.records = self._read_all()
        self._fd = os.open(self.current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._pending = bytearray()
        self._pending_last = self._written = self.last_seq

    @property
    def last_seq(self) -> int:
        """The highest sequence number found when the files were opened."""
        return max((record.seq for record in self.records), default=0)

    def append(self, seq: int, kind: int, at: float, body: bytes | None) -> None:
        """Queue one record, in order; `write_through(seq)` makes it durable."""
        payload = body or b""
        checked = _CHECKED.pack(seq, kind, at, len(payload)) + payload
        with self._lock:
            self._pending += struct.pack("<I", zlib.crc32(checked))
            self._pending += checked
            self._pending_last = seq

    def write_through(self, seq: int) -> None:
        """Return once record `seq` is written (and flushed, with `flush_each`).

        Called without the tracker's lock: the write releases the interpreter lock, and a
        thread that held a contended lock across it would make every request wait for it.
        Whoever writes takes everything queued, so a busy moment costs one write.
        """
        with self._write_lock:
            if self._written >= seq:
                return
            with self._lock:
                data, last = self._pending, self._pending_last
                self._pending = bytearray()
            os.write(self._fd, data)
            if self._flush_each:
                os.fsync(self._fd)
            self._written = last

    def rotate(self, last_seq: int) -> None:
        """Rename the current file after its last record and start a new one."""
        self.write_through(last_seq)
        with self._write_lock, self._lock:
            os.close(self._fd)
            if self.current.exists():
                self.current.rename(self._rotated_name(last_seq))
            self._fd = os.open(self.current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def drop_through(self, position: int) -> None:
        """Delete renamed files whose records a snapshot at `position` all covers."""
        for path in self.rotated():
            if int(path.name.rsplit(".", 1)[1]) <= position:
                path.unlink(missing_ok=True)

    def rotated(self) -> list[Path]:
        """Renamed files, oldest first."""
        return sorted(self.current.parent.glob(self.current.name + ".*"))

    def close(self) -> None:
        """Write what is queued and close the current file."""
        self.write_through(self._pending_last)
        with self._write_lock:
            os.close(self._fd)

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


def _read(path: Path, repair_tail: bool) -> list[Record]:
    data = path.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        end = offset + _HEADER.size
        if end <= len(data):
            crc, seq, kind, at, length = _HEADER.unpack_from(data, offset)
            body_end = end + length
            whole = body_end <= len(data)
            if whole and zlib.crc32(data[offset + 4 : body_end]) == crc:
                body = data[end:body_end] if length else None
                records.append(Record(seq, kind, at, body))
                offset = body_end
                continue
        if repair_tail and _is_tail(data, offset):
            # A record cut short by a crash: it was never acknowledged.
            os.truncate(path, offset)
            break
        raise JournalError(f"journal file {path} is damaged at byte {offset}")
    return records


def _is_tail(data: bytes, offset: int) -> bool:
    """Whether the damage at `offset` can only be the last record, cut short."""
    if offset + _HEADER.size > len(data):
        return True
    length: int = _HEADER.unpack_from(data, offset)[4]
    return offset + _HEADER.size + length >= len(data)
