"""Parsers of flag and environment values: each takes the text and raises ValueError saying why."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE: Final = re.compile(r"(\d+)(B|KiB|MiB)?")
_UNIT_BYTES: Final = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024}
DURATION_SPELLINGS: Final = "500ms, 10s, 5m, 4h, 1h30m, 3d (days), 1w (weeks)"
# Flags, environment variables and the configuration file all take these, in any case.
TRUE_WORDS: Final = ("true", "yes", "on", "1")
FALSE_WORDS: Final = ("false", "no", "off", "0")
BOOL_SPELLINGS: Final = "true or false; also yes/no, on/off, 1/0"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration such as `500ms`, `10s`, `5m`, `1h30m`, `3d`."""
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 10s, 5m, 4h, 1h30m, 3d, 1w)")
    return seconds


def parse_positive_duration(text: str) -> float:
    """A duration longer than zero."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r} (must be longer than 0s)")
    return seconds


def parse_timeout(text: str) -> float:
    """A duration of at least one second."""
    seconds = parse_duration(text)
    if seconds < 1:
        raise ValueError(f"invalid timeout {text!r} (use at least 1s)")
    return seconds


def parse_relay_timeout(text: str) -> float:
    """A duration of more than zero and at most ten seconds."""
    seconds = parse_duration(text)
    if not 0 < seconds <= 10:
        raise ValueError(f"invalid timeout {text!r} (use more than 0 and at most 10s)")
    return seconds


def parse_listen_address(text: str) -> tuple[str, int]:
    """(host, port) of `host:port`, `:port` or `[v6]:port`; an empty host means all IPv4."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid listen address {text!r} (use e.g. :9850 or 127.0.0.1:9850)")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port_text)


def parse_public_url(text: str) -> str:
    """The absolute webhook URL sipgate should call; a bare origin gets `/webhook`."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"invalid public URL {text!r} (use e.g. https://stats.example.com/webhook)"
        )
    path = parts.path if parts.path not in ("", "/") else "/webhook"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_link_url(text: str) -> str:
    """An absolute http(s) URL to link to, such as a Grafana dashboard, as given."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {text!r} (use e.g. https://grafana.example.com/d/sipgate)")
    if parts.username is not None or parts.password is not None:
        # Without the text: it is shown on the status page, and this one holds credentials.
        raise ValueError("a URL shown on the status page must be given without credentials")
    return text


def parse_upstream_url(text: str) -> str:
    """An absolute http(s) URL of the application that relay mode passes events on to."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Without the text: an upstream URL may carry credentials.
        raise ValueError("invalid upstream URL (use e.g. https://crm.example.com/sipgate)")
    return text


def parse_bool(text: str) -> bool:
    """`true` or `false`, also yes/no, on/off, 1/0, in any case."""
    lowered = text.strip().lower()
    if lowered not in (*TRUE_WORDS, *FALSE_WORDS):
        raise ValueError(f"invalid value {text!r} (use {BOOL_SPELLINGS})")
    return lowered in TRUE_WORDS


def parse_size(text: str) -> int:
    """Bytes in `16384`, `16KiB` or `1MiB`."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"invalid size {text!r} (use e.g. 16384, 16KiB or 1MiB)")
    return int(match.group(1)) * _UNIT_BYTES[match.group(2)]


def parse_positive_int(text: str) -> int:
    """A whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"invalid number {text!r} (use a whole number of at least 1)")
    return int(text)


def parse_retries(text: str) -> int:
    """A whole number from 0 to 10."""
    if not text.isdigit() or int(text) > 10:
        raise ValueError(f"invalid number {text!r} (use a whole number from 0 to 10)")
    return int(text)


def parse_user_name(text: str) -> str:
    """A basic auth user name: anything without a colon."""
    if ":" in text:
        raise ValueError("a basic auth user name cannot contain ':'")
    return text


def parse_state_url(text: str) -> str:
    """A postgresql:// URL that libpq can read."""
    # Imported here: psycopg is loaded only by exporters that use PostgreSQL.
    from exporter.storage.postgres.connect import parse_state_url as parse

    return parse(text)


_REPLICA_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def parse_replica_name(text: str) -> str:
    """A replica's name: letters, digits, '.', '_' and '-', at most 63, as host names are."""
    if not _REPLICA_NAME.fullmatch(text):
        raise ValueError(
            f"invalid replica name {text!r}: use up to 63 letters, digits, '.', '_' or '-'"
        )
    return text


def parse_optional_path(text: str) -> Path | None:
    """The path, or None for an empty text."""
    return Path(text) if text else None


def read_secret(path: str) -> str:
    """The password in the file at `path`, without its line break."""
    # The message names the file, never what is in it.
    try:
        with open(path, encoding="utf-8") as file:
            secret = file.read(4096).rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read password file {path!r}: {reason or error}") from None
    if not secret:
        raise ValueError(f"password file {path!r} is empty")
    return secret


def one_of(
    choices: Sequence[str], aliases: Mapping[str, str] | None = None
) -> Callable[[str], str]:
    """A parser that accepts one of `choices` or `aliases` in any case, and returns the choice."""
    known = {choice: choice for choice in choices} | dict(aliases or {})

    def parse(text: str) -> str:
        choice = known.get(text.strip().lower())
        if choice is None:
            raise ValueError(f"invalid value {text!r} (choose from {', '.join(choices)})")
        return choice

    return parse
