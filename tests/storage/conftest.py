"""A small file system of its own for the full-disk tests: a tmpfs, mounted as root (CI is)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

# The PostgreSQL cluster of the session, for tests/storage/test_postgres_*.py.
from tests.postgres import postgres, state_url  # noqa: F401

SIZE: Final = 8 << 20
_CHUNK: Final = bytes(4096)


class SmallDisk:
    """A tmpfs at `path`; `fill()` takes its free space, `free()` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Take all free space but about `leave` bytes."""
        with self._filler.open("ab", buffering=0) as filler:
            while self.available() > leave:
                try:
                    filler.write(_CHUNK)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    return

    def free(self) -> None:
        """Give back what `fill()` took."""
        self._filler.unlink(missing_ok=True)

    def available(self) -> int:
        """Free bytes now."""
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A tmpfs of SIZE bytes, mounted for one test; it needs root."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mount_point)]
    try:
        mounted = subprocess.run(command, capture_output=True, text=True, check=False)
        failure = mounted.stderr.strip() if mounted.returncode else None
    except FileNotFoundError as error:
        failure = str(error)
    if failure is not None:
        pytest.fail(
            "the full-disk tests mount a small tmpfs, which needs root (CI runs as root): "
            f"{' '.join(command)}: {failure}"
        )
    try:
        yield SmallDisk(mount_point)
    finally:
        # Lazily, so that a file a failed test left open cannot keep the mount.
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
