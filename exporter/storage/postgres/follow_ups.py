"""Relay mode's follow-up URLs in PostgreSQL, so that a call's answer and hangup find them on
whichever replica they arrive."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Final

import psycopg

from exporter.errors import StateUnavailableError
from exporter.relay.credentials import Credentials
from exporter.relay.reply import FollowUps
from exporter.storage.postgres.connect import Connection, fetch_value, reason
from exporter.storage.postgres.store import PostgresStore

# How often the replica holding the gauges drops the oldest follow-ups past the cap.
CAP_INTERVAL: Final = 10.0

_REMEMBER: Final = """
    INSERT INTO sipgate_exporter.relay_follow_ups
        (call_id, on_answer, on_hangup, on_data, expires_at)
    VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))
    ON CONFLICT (call_id) DO UPDATE SET on_answer = excluded.on_answer,
        on_hangup = excluded.on_hangup, on_data = excluded.on_data,
        expires_at = excluded.expires_at
"""
_GET: Final = """
    SELECT on_answer, on_hangup, on_data FROM sipgate_exporter.relay_follow_ups
    WHERE call_id = %s AND expires_at > now()
"""
_POP: Final = """
    DELETE FROM sipgate_exporter.relay_follow_ups WHERE call_id = %s
    RETURNING on_answer, on_hangup, on_data, expires_at > now()
"""
_COUNT: Final = "SELECT count(*) FROM sipgate_exporter.relay_follow_ups WHERE expires_at > now()"
_EXPIRE: Final = "DELETE FROM sipgate_exporter.relay_follow_ups WHERE expires_at <= now()"
_CAP: Final = """
    DELETE FROM sipgate_exporter.relay_follow_ups WHERE call_id IN (
        SELECT call_id FROM sipgate_exporter.relay_follow_ups
        ORDER BY expires_at DESC OFFSET %s
    )
"""


class SharedFollowUps:
    """Follow-ups every replica reads and writes: at most about `max_calls` (the oldest beyond
    are dropped within seconds), each forgotten `expire_after` seconds after it was kept, and
    kept without the upstreams' `credentials`."""

    def __init__(
        self,
        store: PostgresStore,
        max_calls: int,
        expire_after: float,
        credentials: Credentials | None = None,
    ) -> None:
        self._store = store
        self._max_calls = max_calls
        self._expire_after = expire_after
        self._credentials = credentials or Credentials(())
        self._next_cap = 0.0

    def __len__(self) -> int:
        with self._connection() as connection:
            return int(fetch_value(connection, _COUNT))

    def remember(self, call_id: str, follow_ups: FollowUps) -> None:
        """Keep `follow_ups` for `call_id`, replacing what was kept; raise StateError if the
        database cannot take it."""
        kept = self._credentials.stripped(follow_ups)
        urls = (kept.on_answer, kept.on_hangup, kept.on_data)
        with self._connection() as connection:
            connection.execute(_REMEMBER, (call_id, *urls, self._expire_after))

    def get(self, call_id: str) -> FollowUps | None:
        """The follow-ups kept for `call_id`, if any; raise StateError if they cannot be read."""
        with self._connection() as connection:
            row = connection.execute(_GET, (call_id,)).fetchone()
        return self._credentials.restored(FollowUps(*row)) if row is not None else None

    def pop(self, call_id: str) -> FollowUps | None:
        """The follow-ups kept for `call_id`, if any, forgotten from now on; raise StateError
        if they cannot be read."""
        with self._connection() as connection:
            row = connection.execute(_POP, (call_id,)).fetchone()
        if row is None or not row[3]:
            return None
        return self._credentials.restored(FollowUps(row[0], row[1], row[2]))

    def sweep(self) -> int:
        """Forget follow-ups past their time and, on the replica holding the gauges, the oldest
        beyond the cap; return how many. Raise StateError if the database cannot be reached."""
        with self._connection() as connection:
            forgotten = connection.execute(_EXPIRE).rowcount
            if self._store.leader and time.monotonic() >= self._next_cap:
                self._next_cap = time.monotonic() + CAP_INTERVAL
                forgotten += connection.execute(_CAP, (self._max_calls,)).rowcount
        return forgotten

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._store.connection() as connection:
                yield connection
        except psycopg.Error as error:
            where = self._store.where
            message = f"cannot use relay follow-ups in the state database {where}: {reason(error)}"
            raise StateUnavailableError(message) from None
