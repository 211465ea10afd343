"""The database's clock, read without asking the database each time."""

from __future__ import annotations

import time
from typing import Final

from exporter.storage.postgres.connect import Connection, fetch_value

NOW: Final = "SELECT extract(epoch FROM clock_timestamp())"


class DatabaseClock:
    """The database's time as this host's monotonic clock plus an offset, measured again at
    each `measure` (about once a second), so that a step of either wall clock is followed."""

    def __init__(self) -> None:
        self._offset: float | None = None

    def measure(self, connection: Connection) -> None:
        """Read the database's clock on `connection`, taking it as read halfway through."""
        before = time.monotonic()
        database = float(fetch_value(connection, NOW))
        after = time.monotonic()
        self._offset = database - (before + after) / 2

    def now(self) -> float | None:
        """The database's time, in unix seconds; None before the first measure."""
        offset = self._offset
        return None if offset is None else time.monotonic() + offset
