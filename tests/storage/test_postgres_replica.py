"""The replica claim in a real PostgreSQL: one live session per name, freed when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest

from exporter.errors import StateError
from exporter.storage.postgres.connect import Connection, connect
from exporter.storage.postgres.replica import claim_replica
from exporter.storage.postgres.schema import SCHEMA, migrate
from tests.http_helpers import wait_for

TAKEN = (
    "replica {name} is already running on this database; give each replica its own --state.replica"
)


@pytest.fixture
def migrated(state_url: str) -> str:
    migrate(state_url)
    return state_url


@pytest.fixture
def sessions() -> Iterator[list[Connection]]:
    """Open connections to the migrated database, closed after the test."""
    opened: list[Connection] = []
    yield opened
    for connection in opened:
        connection.close()


def session(sessions: list[Connection], url: str) -> Connection:
    connection = connect(url)
    sessions.append(connection)
    return connection


def claimed(connection: Connection, name: str) -> bool:
    try:
        claim_replica(connection, name)
    except StateError as error:
        refusal = str(error)
    else:
        return True
    assert refusal == TAKEN.format(name=name)
    return False


def replicas(url: str) -> dict[str, tuple[datetime, datetime]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT name, started_at, last_seen FROM sipgate_exporter.replicas"
        )
        return {row[0]: (row[1], row[2]) for row in rows}


def test_a_name_is_claimed_once_while_its_session_lives(
    migrated: str, sessions: list[Connection]
) -> None:
    first, second = session(sessions, migrated), session(sessions, migrated)
    claim_replica(first, "a")
    with pytest.raises(StateError) as caught:
        claim_replica(second, "a")
    assert str(caught.value) == TAKEN.format(name="a")
    first.close()
    # The server ends the first session a moment after the client closed it.
    wait_for(lambda: claimed(second, "a"), timeout=5)


def test_different_names_are_claimed_side_by_side(
    migrated: str, sessions: list[Connection]
) -> None:
    claim_replica(session(sessions, migrated), "a")
    claim_replica(session(sessions, migrated), "b")
    assert set(replicas(migrated)) == {"a", "b"}


def test_a_session_ended_by_the_server_frees_its_name(
    migrated: str, sessions: list[Connection]
) -> None:
    # What happens to a replica killed with -9, once PostgreSQL notices the connection is gone.
    lost, watcher, successor = (session(sessions, migrated) for _ in range(3))
    claim_replica(lost, "a")
    watcher.execute("SELECT pg_terminate_backend(%s)", (lost.info.backend_pid,))
    wait_for(lambda: claimed(successor, "a"), timeout=5)


def test_a_claim_records_the_start(migrated: str, sessions: list[Connection]) -> None:
    first = session(sessions, migrated)
    claim_replica(first, "a")
    started, last_seen = replicas(migrated)["a"]
    assert started == last_seen
    first.close()
    successor = session(sessions, migrated)
    wait_for(lambda: claimed(successor, "a"), timeout=5)
    restarted, _ = replicas(migrated)["a"]
    assert restarted > started


def test_a_claim_before_the_migration_fails_and_keeps_the_name_free(
    state_url: str, sessions: list[Connection]
) -> None:
    early = session(sessions, state_url)
    with pytest.raises(StateError) as caught:
        claim_replica(early, "a")
    message = str(caught.value)
    assert message.startswith("cannot record replica a in the state database 127.0.0.1:")
    assert f'relation "{SCHEMA}.replicas" does not exist' in message
    migrate(state_url)
    claim_replica(session(sessions, state_url), "a")


def test_a_claim_needs_an_autocommit_connection(migrated: str) -> None:
    with psycopg.connect(migrated) as connection, pytest.raises(ValueError, match="autocommit"):
        claim_replica(connection, "a")
