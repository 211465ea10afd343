"""The exporter's tables in PostgreSQL: numbered migrations, each applied once, in order."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import IsolationLevel

from exporter.errors import StateError
from exporter.storage.postgres.connect import Connection, connect, describe, failure, reason

SCHEMA: Final = "sipgate_exporter"  # written out in the SQL below, for it to read plainly
OLDEST_SERVER: Final = 120000  # PostgreSQL 12, as `server_version_num` writes it


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its number, what it does in a few words, and its statements."""

    version: int
    summary: str
    statements: tuple[str, ...]


# Append only: a released migration is never changed, the next one corrects it.
MIGRATIONS: Final = (
    Migration(
        1,
        "schema sipgate_exporter, with its migrations and the replicas",
        (
            "CREATE SCHEMA IF NOT EXISTS sipgate_exporter",
            """CREATE TABLE sipgate_exporter.schema_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )""",
            """CREATE TABLE sipgate_exporter.replicas (
                name text PRIMARY KEY,
                started_at timestamptz NOT NULL,
                last_seen timestamptz NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "calls in progress and their legs, call records, callback debts, settings and each "
        "replica's counters",
        (
            """CREATE TABLE sipgate_exporter.open_calls (
                call_id text PRIMARY KEY,
                direction text NOT NULL,
                line text NOT NULL,
                state text NOT NULL,
                started_at double precision NOT NULL,
                last_event_at double precision NOT NULL,
                grace_until double precision,
                party bytea,
                caller text,
                callee text,
                record jsonb NOT NULL
            )""",
            "CREATE INDEX open_calls_last_event_at ON sipgate_exporter.open_calls (last_event_at)",
            """CREATE INDEX open_calls_grace_until ON sipgate_exporter.open_calls (grace_until)
                WHERE grace_until IS NOT NULL""",
            """CREATE TABLE sipgate_exporter.legs (
                leg_id text PRIMARY KEY,
                call_id text NOT NULL
                    REFERENCES sipgate_exporter.open_calls ON DELETE CASCADE
            )""",
            "CREATE INDEX legs_call_id ON sipgate_exporter.legs (call_id)",
            """CREATE TABLE sipgate_exporter.callback_debts (
                party bytea NOT NULL,
                line text NOT NULL,
                since double precision NOT NULL,
                PRIMARY KEY (party, line)
            )""",
            "CREATE INDEX callback_debts_since ON sipgate_exporter.callback_debts (since)",
            """CREATE TABLE sipgate_exporter.settings (
                name text PRIMARY KEY,
                value text NOT NULL
            )""",
            """CREATE TABLE sipgate_exporter.counters (
                replica text NOT NULL,
                shard integer NOT NULL,
                name text NOT NULL,
                labels text NOT NULL,
                bucket integer NOT NULL,
                value double precision NOT NULL,
                PRIMARY KEY (replica, shard, name, labels, bucket)
            )""",
            "ALTER TABLE sipgate_exporter.replicas ADD COLUMN buckets text",
            """CREATE TABLE sipgate_exporter.calls (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                call_id text NOT NULL,
                started_at timestamptz NOT NULL,
                ended_at timestamptz NOT NULL,
                direction text NOT NULL,
                line text NOT NULL,
                team text,
                user_name text,
                outcome text NOT NULL,
                wait_seconds double precision,
                talk_seconds double precision,
                hangup_cause text,
                caller text,
                callee text,
                party bytea
            )""",
            "CREATE INDEX calls_ended_at ON sipgate_exporter.calls (ended_at)",
            "CREATE INDEX calls_party ON sipgate_exporter.calls (party, line)",
        ),
    ),
    Migration(
        3,
        "relay mode's follow-up URLs, by call; the users with a label of their own",
        (
            """CREATE TABLE sipgate_exporter.relay_follow_ups (
                call_id text PRIMARY KEY,
                on_answer text,
                on_hangup text,
                on_data text,
                expires_at timestamptz NOT NULL
            )""",
            """CREATE INDEX relay_follow_ups_expires_at
                ON sipgate_exporter.relay_follow_ups (expires_at)""",
            """CREATE TABLE sipgate_exporter.users (
                name text PRIMARY KEY,
                added_at timestamptz NOT NULL DEFAULT now()
            )""",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Migrated:
    """What `migrate` found and did: the database, the migrations applied, its version now."""

    where: str
    applied: tuple[Migration, ...]
    version: int


def advisory_key(purpose: str) -> int:
    """The advisory lock key of `purpose`: a signed 64-bit number, the same in every process."""
    digest = hashlib.blake2b(f"{SCHEMA}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_LOCK: Final = advisory_key("migrate")


def migrate(conninfo: str, migrations: Sequence[Migration] = MIGRATIONS) -> Migrated:
    """Apply the migrations the database lacks, in order, each in its own transaction.

    Safe when several exporters start at once: each transaction first takes the migration lock.
    Raise StateError, naming the database, if it cannot be reached or migrated, or if it is at a
    version newer than `migrations` know."""
    _check_numbered(migrations)
    with connect(conninfo) as connection:
        where = describe(connection)
        check_server(where, connection.info.server_version)
        # Each statement must see what the lock holder before it committed.
        connection.isolation_level = IsolationLevel.READ_COMMITTED
        applied: list[Migration] = []
        try:
            while True:
                version, migration = _apply_next(connection, where, migrations)
                if migration is None:
                    return Migrated(where, tuple(applied), version)
                applied.append(migration)
        except psycopg.Error as error:
            raise failure("cannot migrate", where, error) from None


def check_server(where: str, server_version: int) -> None:
    """Refuse a PostgreSQL older than 12, saying which version `where` runs."""
    if server_version < OLDEST_SERVER:
        major, minor = divmod(server_version, 10000)
        shown = f"{major}.{minor}" if major >= 10 else f"{major}.{minor // 100}"
        raise StateError(
            f"the state database {where} runs PostgreSQL {shown}; the exporter needs 12 or newer"
        )


def schema_version(connection: Connection) -> int:
    """The number of the last migration applied to the database; 0 for none."""
    exists = connection.execute(
        "SELECT to_regclass('sipgate_exporter.schema_migrations') IS NOT NULL"
    ).fetchone()
    if not (exists and exists[0]):
        return 0
    found = connection.execute(
        "SELECT coalesce(max(version), 0) FROM sipgate_exporter.schema_migrations"
    ).fetchone()
    return int(found[0]) if found else 0


def _apply_next(
    connection: Connection, where: str, migrations: Sequence[Migration]
) -> tuple[int, Migration | None]:
    """Under the migration lock, apply the migration after the database's version, if any."""
    with connection.transaction():
        # Held until this transaction ends: a replica starting meanwhile waits, then sees it.
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        version = schema_version(connection)
        if version > len(migrations):
            raise StateError(
                f"the state database {where} is at schema version {version}, newer than this "
                f"exporter knows ({len(migrations)}): a newer exporter migrated it; run that "
                "version or a later one (migrations are never undone)"
            )
        if version == len(migrations):
            return version, None
        migration = migrations[version]
        try:
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO sipgate_exporter.schema_migrations (version) VALUES (%s)",
                (migration.version,),
            )
        except psycopg.Error as error:
            raise StateError(
                f"cannot migrate the state database {where}: migration {migration.version} "
                f"({migration.summary}) failed: {reason(error)}"
            ) from None
        return migration.version, migration


def _check_numbered(migrations: Sequence[Migration]) -> None:
    if [migration.version for migration in migrations] != list(range(1, len(migrations) + 1)):
        raise ValueError("migrations must be numbered 1, 2, 3 … in order")
