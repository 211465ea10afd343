"""The shared store's schema in a real PostgreSQL: migrations, their lock, and failures."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import psycopg
import pytest

from exporter.errors import StateError
from exporter.storage.postgres.connect import connect, parse_state_url, where
from exporter.storage.postgres.schema import (
    MIGRATIONS,
    SCHEMA,
    Migrated,
    Migration,
    check_server,
    migrate,
    schema_version,
)
from tests.http_helpers import free_port
from tests.postgres_cluster import GUARDED_ROLE, HOST, PASSWORD, Cluster

ENCODED = quote(PASSWORD, safe="")
SLOW = Migration(
    len(MIGRATIONS) + 1,
    "a table, slowly",
    ("SELECT pg_sleep(0.3)", f"CREATE TABLE {SCHEMA}.slow (id integer)"),
)
BROKEN = Migration(
    len(MIGRATIONS) + 1,
    "a table, then a mistake",
    (f"CREATE TABLE {SCHEMA}.half (id integer)", "SELECT no_such_function()"),
)


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "ORDER BY table_name",
            (SCHEMA,),
        ).fetchall()
    return [row[0] for row in rows]


def applied_rows(url: str) -> list[tuple[int, object]]:
    with psycopg.connect(url) as connection:
        query = (
            "SELECT version, applied_at FROM sipgate_exporter.schema_migrations ORDER BY version"
        )
        return [(int(row[0]), row[1]) for row in connection.execute(query)]


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [migration.version for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    with pytest.raises(ValueError, match="numbered"):
        migrate("postgresql://unused", [SLOW])


def test_migrate_creates_the_schema_in_an_empty_database(state_url: str) -> None:
    migrated = migrate(state_url)
    assert migrated.applied == MIGRATIONS
    assert migrated.version == len(MIGRATIONS)
    assert migrated.where.startswith(f"{HOST}:")
    assert {"schema_migrations", "replicas"} <= set(tables(state_url))
    rows = applied_rows(state_url)
    assert [version for version, _ in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert all(applied_at is not None for _, applied_at in rows)


def test_migrate_again_changes_nothing(state_url: str) -> None:
    migrate(state_url)
    before = applied_rows(state_url)
    again = migrate(state_url)
    assert again == Migrated(again.where, (), len(MIGRATIONS))
    assert applied_rows(state_url) == before


def test_a_later_migration_applies_on_top(state_url: str) -> None:
    migrate(state_url)
    migrated = migrate(state_url, (*MIGRATIONS, SLOW))
    assert migrated.applied == (SLOW,)
    assert migrated.version == SLOW.version
    assert "slow" in tables(state_url)


def test_replicas_starting_at_once_migrate_once(state_url: str) -> None:
    migrations = (*MIGRATIONS, SLOW)  # SLOW's CREATE TABLE fails if run twice
    starting = threading.Barrier(4)

    def start() -> Migrated:
        starting.wait()
        return migrate(state_url, migrations)

    with ThreadPoolExecutor(4) as pool:
        results = [future.result() for future in [pool.submit(start) for _ in range(4)]]
    assert {result.version for result in results} == {SLOW.version}
    applied = [migration for result in results for migration in result.applied]
    assert sorted(applied, key=lambda migration: migration.version) == list(migrations)
    assert [version for version, _ in applied_rows(state_url)] == [*range(1, SLOW.version + 1)]


def test_a_failed_migration_leaves_the_ones_before_it(state_url: str) -> None:
    with pytest.raises(StateError) as caught:
        migrate(state_url, (*MIGRATIONS, BROKEN))
    message = str(caught.value)
    assert message.startswith(f"cannot migrate the state database {HOST}:")
    assert f"migration {BROKEN.version} (a table, then a mistake) failed: " in message
    assert "no_such_function" in message
    assert "\n" not in message
    assert "half" not in tables(state_url)
    with connect(state_url) as connection:
        assert schema_version(connection) == len(MIGRATIONS)


def test_a_database_newer_than_the_exporter_is_refused(state_url: str) -> None:
    migrate(state_url)
    with psycopg.connect(state_url) as connection:
        connection.execute("INSERT INTO sipgate_exporter.schema_migrations (version) VALUES (99)")
    with pytest.raises(StateError) as caught:
        migrate(state_url)
    message = str(caught.value)
    assert message.startswith(f"the state database {HOST}:")
    assert f"is at schema version 99, newer than this exporter knows ({len(MIGRATIONS)})" in (
        message
    )


def test_an_unreachable_database_is_named_without_the_password() -> None:
    port = free_port()
    url = f"postgresql://someone:{ENCODED}@{HOST}:{port}/calls"
    with pytest.raises(StateError) as caught:
        migrate(url)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the state database {HOST}:{port}/calls: ")
    assert "refused" in message
    assert PASSWORD not in message
    assert ENCODED not in message
    assert "\n" not in message


def test_a_wrong_password_is_named_but_not_shown(postgres: Cluster) -> None:
    database = postgres.create_database(owner=GUARDED_ROLE)
    url = postgres.url_for(database, GUARDED_ROLE, "not-" + PASSWORD)
    with pytest.raises(StateError) as caught:
        migrate(url)
    message = str(caught.value)
    assert message == (
        f"cannot connect to the state database {HOST}:{postgres.port}/{database}: "
        f'password authentication failed for user "{GUARDED_ROLE}"'
    )


def test_the_right_password_migrates(postgres: Cluster) -> None:
    database = postgres.create_database(owner=GUARDED_ROLE)
    assert migrate(postgres.url_for(database, GUARDED_ROLE, PASSWORD)).applied == MIGRATIONS


def test_a_missing_database_is_named(postgres: Cluster) -> None:
    with pytest.raises(StateError) as caught:
        migrate(postgres.url_for("no_such_database"))
    assert str(caught.value) == (
        f"cannot connect to the state database {HOST}:{postgres.port}/no_such_database: "
        'database "no_such_database" does not exist'
    )


def test_a_role_without_rights_cannot_migrate(postgres: Cluster) -> None:
    database = postgres.create_database()  # owned by the superuser
    with pytest.raises(StateError) as caught:
        migrate(postgres.url_for(database, GUARDED_ROLE, PASSWORD))
    message = str(caught.value)
    assert message.startswith(f"cannot migrate the state database {HOST}:{postgres.port}/")
    assert "permission denied for database" in message
    assert PASSWORD not in message


def test_postgresql_older_than_12_is_refused() -> None:
    check_server("db:5432/calls", 120000)
    with pytest.raises(StateError, match=r"db:5432/calls runs PostgreSQL 11\.9; .* 12 or newer"):
        check_server("db:5432/calls", 110009)
    with pytest.raises(StateError, match=r"runs PostgreSQL 9\.6;"):
        check_server("db:5432/calls", 90624)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:pw-Zq7%21x@db:5432/calls",
        "postgres://db/calls?sslmode=require",
        "postgresql:///calls?host=/run/postgresql",
        "postgresql://db1:5432,db2:5432/calls",
        "postgresql://",
    ],
)
def test_state_urls_that_libpq_reads(url: str) -> None:
    assert parse_state_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("db:5432/calls", "expected a URL like postgresql://"),
        ("mysql://user@db/calls", "expected a URL like postgresql://"),
        ("host=db dbname=calls", "expected a URL like postgresql://"),
        ("postgresql://user@db/calls?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgresql://user:hunter2@[::1/calls", "IPv6"),
        ("postgresql://user:hunter2@db:port/calls", "invalid port 'port'"),
    ],
)
def test_malformed_state_urls_are_refused_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as caught:
        parse_state_url(url)
    assert "hunter2" not in str(caught.value)


def test_where_names_host_port_and_database_only() -> None:
    url = f"postgresql://someone:{ENCODED}@db.example:6432/calls?sslmode=require"
    assert where(url) == "db.example:6432/calls"
    assert where("postgresql://someone@db.example/") == "db.example:5432/someone"
    assert where("postgresql:///calls") == "/var/run/postgresql:5432/calls"
