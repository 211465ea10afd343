"""`sipgate-exporter state migrate`, run as a real process against a real PostgreSQL."""

from __future__ import annotations

import subprocess
from urllib.parse import quote

import psycopg

from exporter.storage.postgres.schema import MIGRATIONS
from tests.http_helpers import free_port
from tests.postgres_cluster import GUARDED_ROLE, HOST, PASSWORD, Cluster
from tests.programs import EXPORTER, clean_env

ENCODED = quote(PASSWORD, safe="")
LATEST = len(MIGRATIONS)
PROG = "sipgate-exporter state migrate: error: "


def state_migrate(*flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXPORTER, "state", "migrate", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**env),
        check=False,
    )


def only_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The one line a failed migration wrote, checked to exit with `status`, nothing on stdout."""
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PROG)
    return lines[0].removeprefix(PROG)


def where(postgres: Cluster, database: str) -> str:
    return f"{HOST}:{postgres.port}/{database}"


def test_migrates_an_empty_database_then_finds_it_up_to_date(postgres: Cluster) -> None:
    database = postgres.create_database()
    url = postgres.url_for(database)
    first = state_migrate(f"--state.url={url}")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        *(f"applied migration {m.version}: {m.summary}" for m in MIGRATIONS),
        f"{where(postgres, database)}: now at version {LATEST}",
    ]
    again = state_migrate("--state.url", url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{where(postgres, database)}: up to date, version {LATEST}\n"


def test_takes_the_url_from_the_environment(postgres: Cluster) -> None:
    database = postgres.create_database()
    result = state_migrate(SIPGATE_EXPORTER_STATE_URL=postgres.url_for(database))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"{where(postgres, database)}: now at version {LATEST}\n")


def test_takes_the_password_from_pgpassword(postgres: Cluster) -> None:
    database = postgres.create_database(owner=GUARDED_ROLE)
    url = postgres.url_for(database, GUARDED_ROLE)
    refused = state_migrate(f"--state.url={url}")
    assert "no password supplied" in only_error(refused, 1)
    result = state_migrate(f"--state.url={url}", PGPASSWORD=PASSWORD)
    assert result.returncode == 0, result.stderr


def test_a_wrong_password_exits_1_naming_the_database_only(postgres: Cluster) -> None:
    database = postgres.create_database(owner=GUARDED_ROLE)
    url = postgres.url_for(database, GUARDED_ROLE, "x" + PASSWORD)
    line = only_error(state_migrate(f"--state.url={url}"), 1)
    assert line == (
        f"cannot connect to the state database {where(postgres, database)}: "
        f'password authentication failed for user "{GUARDED_ROLE}"'
    )


def test_an_unreachable_database_exits_1() -> None:
    port = free_port()
    line = only_error(
        state_migrate(f"--state.url=postgresql://someone:{ENCODED}@{HOST}:{port}/calls"), 1
    )
    assert line.startswith(f"cannot connect to the state database {HOST}:{port}/calls: ")
    assert PASSWORD not in line
    assert ENCODED not in line


def test_a_newer_database_exits_1(postgres: Cluster) -> None:
    database = postgres.create_database()
    url = postgres.url_for(database)
    assert state_migrate(f"--state.url={url}").returncode == 0
    with psycopg.connect(url) as connection:
        connection.execute("INSERT INTO sipgate_exporter.schema_migrations (version) VALUES (99)")
    line = only_error(state_migrate(f"--state.url={url}"), 1)
    assert f"is at schema version 99, newer than this exporter knows ({LATEST})" in line


def test_a_malformed_url_exits_2_without_the_password() -> None:
    line = only_error(state_migrate("--state.url=postgresql://user:hunter2@db/calls?bogus=1"), 2)
    assert line == '--state.url: invalid URI query parameter: "bogus"'
    line = only_error(state_migrate(SIPGATE_EXPORTER_STATE_URL="user:hunter2@db/calls"), 2)
    assert line.startswith("SIPGATE_EXPORTER_STATE_URL: expected a URL like postgresql://")
    assert "hunter2" not in line


def test_without_a_url_exits_2() -> None:
    line = only_error(state_migrate(), 2)
    assert line == "--state.url or SIPGATE_EXPORTER_STATE_URL is required"


def test_state_alone_shows_its_commands() -> None:
    result = subprocess.run(
        [*EXPORTER, "state"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 2
    assert "migrate" in result.stderr
