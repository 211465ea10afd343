"""The replica claim: at most one live exporter per `--state.replica` name on a database."""

from __future__ import annotations

import contextlib

import psycopg

from exporter.errors import StateError
from exporter.storage.postgres.connect import Connection, describe, failure
from exporter.storage.postgres.schema import advisory_key

_UPSERT = """
    INSERT INTO sipgate_exporter.replicas (name, started_at, last_seen)
    VALUES (%(name)s, now(), now())
    ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, last_seen = now()
"""


def replica_key(name: str) -> int:
    """The advisory lock key that the replica named `name` holds while it runs."""
    return advisory_key(f"replica:{name}")


def claim_replica(connection: Connection, name: str) -> None:
    """Hold `name` for as long as `connection`'s session lives, and record the replica's start.

    The claim is a session-level advisory lock: it ends when the session does, also when the
    process is killed (once PostgreSQL notices the dead connection), so `connection` must be
    an autocommit connection of its own, never one lent by a pool. Raise StateError if a live
    session holds `name` already, or the database cannot record it."""
    if not connection.autocommit:
        raise ValueError("claim_replica needs an autocommit connection of its own")
    where = describe(connection)
    key = replica_key(name)
    try:
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    except psycopg.Error as error:
        raise failure(f"cannot claim replica {name} on", where, error) from None
    if not (row and row[0]):
        raise StateError(
            f"replica {name} is already running on this database; "
            "give each replica its own --state.replica"
        )
    try:
        connection.execute(_UPSERT, {"name": name})
    except psycopg.Error as error:
        _release(connection, key)
        raise failure(f"cannot record replica {name} in", where, error) from None


def release_replica(connection: Connection, name: str) -> None:
    """Give back the claim on `name`, if `connection` still holds it."""
    _release(connection, replica_key(name))


def _release(connection: Connection, key: int) -> None:
    # A session lock outlives a failed statement: give it back, or the name stays taken until
    # the connection closes. A broken connection has lost the lock already.
    with contextlib.suppress(psycopg.Error):
        connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
