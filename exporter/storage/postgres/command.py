"""`sipgate-exporter state migrate`: create or update the exporter's tables in PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from typing import Final, TypeVar

URL_ENV: Final = "SIPGATE_EXPORTER_STATE_URL"
_PROG: Final = "sipgate-exporter state migrate"
_SUMMARY: Final = "manage the state that several exporters share in PostgreSQL"
_MIGRATE_SUMMARY: Final = "create or update the exporter's tables in PostgreSQL, then exit"
_MIGRATE_DESCRIPTION: Final = (
    "Apply the schema migrations the state database lacks, in order, and print them: for "
    "operators who migrate by hand, before the exporters start. The password may also come "
    "from PGPASSWORD or a passfile, as libpq allows."
)
_ParserT = TypeVar("_ParserT", bound=argparse.ArgumentParser)


def add_parser(subparsers: argparse._SubParsersAction[_ParserT]) -> None:
    """Add `state` and its commands to the exporter's; the parsed namespace's `run` runs one."""
    state = subparsers.add_parser(
        "state", help=_SUMMARY, description=_SUMMARY.capitalize() + ".", allow_abbrev=False
    )
    commands = state.add_subparsers(title="commands", dest="state_command", required=True)
    migrate = commands.add_parser(
        "migrate", help=_MIGRATE_SUMMARY, description=_MIGRATE_DESCRIPTION, allow_abbrev=False
    )
    migrate.add_argument(
        "--state.url",
        dest="state_url_given",
        metavar="URL",
        help=f"postgresql://user:password@host:5432/database (env {URL_ENV})",
    )
    migrate.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    """Migrate the database of --state.url; exit status 1 if it fails, 2 for a bad URL."""
    # Imported here: psycopg is needed by this command only, not by every exporter start.
    from exporter.errors import StateError
    from exporter.storage.postgres.connect import parse_state_url
    from exporter.storage.postgres.schema import migrate

    url, source = args.state_url_given, "--state.url"
    if not url:
        url, source = args.environ.get(URL_ENV, ""), URL_ENV
    if not url:
        return _error(f"--state.url or {URL_ENV} is required", 2)
    try:
        parse_state_url(url)
    except ValueError as error:
        return _error(f"{source}: {error}", 2)
    try:
        migrated = migrate(url)
    except StateError as error:
        return _error(str(error), 1)
    for migration in migrated.applied:
        print(f"applied migration {migration.version}: {migration.summary}")
    status = "now at" if migrated.applied else "up to date,"
    print(f"{migrated.where}: {status} version {migrated.version}")
    return 0


def _error(message: str, status: int) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return status
