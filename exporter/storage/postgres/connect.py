"""Connections to the state database: the URL checked, each failure one line naming the database."""

from __future__ import annotations

import os
import re
from typing import Any, Final
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from exporter.errors import StateError

Connection = psycopg.Connection[tuple[Any, ...]]

SCHEMES: Final = ("postgresql", "postgres")
APPLICATION_NAME: Final = "sipgate-exporter"
# Where libpq looks without a host: a Unix socket in this directory (Debian's, psycopg's builds).
DEFAULT_SOCKETS: Final = "/var/run/postgresql"
# libpq would wait minutes for a host that does not answer; a start should fail sooner.
CONNECT_TIMEOUT: Final = 10
# A lost machine sends no FIN: without keepalives PostgreSQL keeps its session, its locks and
# its replica name for the system's two hours. These end such a session within about 25 s.
_KEEPALIVES: Final = (
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
)
_CLIENT_KEEPALIVES: Final = (
    ("keepalives", "1"),
    ("keepalives_idle", "10"),
    ("keepalives_interval", "5"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
)
_PASSWORDS: Final = re.compile(r"://[^:@/?]*:([^@/?]*)@|[?&]password=([^&]*)")
# libpq repeats the address it failed on, which the messages name already.
_ADDRESS_PREFIX: Final = re.compile(
    r"^(?:connection (?:failed|is bad): )?(?:connection to server (?:at|on) .*? failed: )?"
    r"(?:(?:FATAL|ERROR):\s+)?"
)


def parse_state_url(text: str) -> str:
    """Return `text` if libpq reads it as a postgresql:// URL; raise ValueError saying why not."""
    scheme, separator, _ = text.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        raise ValueError("expected a URL like postgresql://user:password@host:5432/database")
    try:
        params = conninfo_to_dict(text)
    except psycopg.Error as error:
        raise ValueError(_without_password(_first_line(error), text)) from None
    for port in str(params.get("port", "")).split(","):
        if port and not port.isdigit():
            raise ValueError(f"invalid port {port!r}: expected a number such as 5432")
    return text


def connect(conninfo: str) -> Connection:
    """An autocommit connection to the state database; raise StateError naming it and why."""
    try:
        connection = psycopg.connect(conninfo, autocommit=True, **connection_defaults(conninfo))
    except psycopg.Error as error:
        raise StateError(
            f"cannot connect to the state database {where(conninfo)}: {reason(error, conninfo)}"
        ) from None
    try:
        configure_session(connection)
    except psycopg.Error as error:
        shown = describe(connection)
        connection.close()
        raise failure("cannot set up a session on", shown, error) from None
    return connection


def connection_defaults(conninfo: str) -> dict[str, Any]:
    """Connection parameters the exporter sets where neither `conninfo` nor libpq's
    environment does: a timeout, and its name in pg_stat_activity."""
    params = conninfo_to_dict(conninfo)
    defaults: dict[str, Any] = {}
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
        defaults["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in params and "PGAPPNAME" not in os.environ:
        defaults["application_name"] = APPLICATION_NAME
    # This side's keepalives and a limit on unacknowledged data: a database host that vanished
    # without closing the connection is noticed in seconds, not after TCP's 15 minutes.
    for name, value in _CLIENT_KEEPALIVES:
        if name not in params:
            defaults[name] = value
    return defaults


def configure_session(connection: Connection) -> None:
    """Set what every session of the exporter needs: keepalives that end a lost one soon."""
    settings = ", ".join(f"set_config('{name}', '{value}', false)" for name, value in _KEEPALIVES)
    connection.execute(f"SELECT {settings}")


def fetch_value(connection: Connection, query: str, params: Any = None) -> Any:
    """The first column of the row that `query` returns; a psycopg.Error if there is none."""
    row = connection.execute(query, params).fetchone()
    if row is None:
        raise psycopg.ProgrammingError(f"no row from {query.split()[0]}")
    return row[0]


def where(conninfo: str) -> str:
    """`host:port/database` of `conninfo` as libpq would fill it in; never the password."""
    params = conninfo_to_dict(conninfo)
    defaults = {
        option.keyword.decode(): option.val.decode()
        for option in psycopg.pq.Conninfo.get_defaults()
        if option.val is not None
    }

    def value(key: str, fallback: str) -> str:
        return str(params.get(key) or defaults.get(key) or fallback)

    host = value("host", value("hostaddr", DEFAULT_SOCKETS))
    return f"{host}:{value('port', '5432')}/{value('dbname', value('user', ''))}"


def describe(connection: Connection) -> str:
    """`host:port/database` of an open connection, as it was made; never the password."""
    info = connection.info
    return f"{info.host}:{info.port}/{info.dbname}"


def failure(action: str, where: str, error: psycopg.Error) -> StateError:
    """A StateError of one line: `action` the state database `where`, then why it failed."""
    return StateError(f"{action} the state database {where}: {reason(error)}")


def reason(error: psycopg.Error, conninfo: str = "") -> str:
    """Why `error` happened, in one line, without the address libpq repeats or a password."""
    primary = error.diag.message_primary
    text = primary if primary else _ADDRESS_PREFIX.sub("", _first_line(error))
    return _without_password(text, conninfo) if conninfo else text


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # Several addresses tried (localhost is ::1 and 127.0.0.1): the last one says why.
    attempts = [line.removeprefix("- ") for line in lines if line.startswith("- ")]
    line = attempts[-1] if attempts else (lines[0] if lines else type(error).__name__)
    return re.sub(r"^host: .*?: (?=connection)", "", line)


def _without_password(text: str, conninfo: str) -> str:
    # libpq quotes a URL it cannot parse whole, so look for the password in the raw text.
    for found in _PASSWORDS.finditer(conninfo):
        raw = found[1] or found[2] or ""
        for secret in sorted({raw, unquote(raw)} - {""}, key=len, reverse=True):
            text = text.replace(secret, "***")
    return text
