"""The exporter's configuration: Prometheus-style flags, each with an environment variable."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit, urlunsplit

from exporter import __version__

ENV_PREFIX: Final = "SIPGATE_EXPORTER_"
LOG_LEVELS: Final = ("debug", "info", "warn", "error")
LOG_FORMATS: Final = ("text", "json")

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """A flag or environment value that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class Config:
    """Validated settings of one exporter process."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 9850
    threads: int = 4
    public_url: str | None = None
    forward_grace: float = 10.0
    expire_after: float = 4 * 3600.0
    log_level: str = "info"
    log_format: str = "text"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration such as `500ms`, `10s`, `5m`, `1h30m`."""
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 10s, 5m, 4h, 1h30m)")
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


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"invalid number {text!r} (use a whole number of at least 1)")
    return int(text)


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"invalid value {text!r} (choose from {', '.join(choices)})")
        return text

    return parse


@dataclass(frozen=True, slots=True)
class _Flag:
    name: str
    field: str
    parse: Callable[[str], Any]
    default: str
    help: str
    env_name: str | None = None

    @property
    def env(self) -> str:
        return self.env_name or ENV_PREFIX + re.sub(r"[.-]", "_", self.name).upper()


FLAGS: Final = (
    _Flag(
        "web.listen-address",
        "listen",
        parse_listen_address,
        ":9850",
        "address to serve the webhook, landing page and /metrics on",
    ),
    _Flag("web.threads", "threads", _positive_int, "4", "worker threads answering HTTP requests"),
    _Flag(
        "webhook.public-url",
        "public_url",
        parse_public_url,
        "",
        "absolute URL sipgate reaches the webhook at, put into replies to newCall; "
        "derived from each request when empty",
        env_name=ENV_PREFIX + "PUBLIC_URL",
    ),
    _Flag(
        "calls.forward-grace",
        "forward_grace",
        parse_duration,
        "10s",
        "how long a call whose last leg ended 'forwarded' waits for its next leg",
    ),
    _Flag(
        "calls.expire-after",
        "expire_after",
        parse_duration,
        "4h",
        "end a call as 'expired' when none of its events arrived for this long",
    ),
    _Flag(
        "log.level",
        "log_level",
        _choice(LOG_LEVELS),
        "info",
        "least severe log level to print: " + ", ".join(LOG_LEVELS),
    ),
    _Flag(
        "log.format",
        "log_format",
        _choice(LOG_FORMATS),
        "text",
        "log line format: " + ", ".join(LOG_FORMATS),
    ),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def build_parser(prog: str = "sipgate-exporter") -> argparse.ArgumentParser:
    """The argument parser, with each flag's default and environment variable in its help."""
    parser = _Parser(
        prog=prog,
        description="Prometheus exporter for sipgate.io call statistics. Point sipgate.io's "
        "webhook URLs at /webhook and let Prometheus scrape /metrics.",
    )
    for flag in FLAGS:
        shown = repr(flag.default) if flag.default == "" else flag.default
        parser.add_argument(
            f"--{flag.name}",
            dest=flag.field,
            metavar=flag.name.split(".")[-1].upper(),
            help=f"{flag.help} (default: {shown}; env {flag.env})",
        )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Build the Config from flags, then environment, then defaults; raise ConfigError."""
    namespace = build_parser().parse_args(list(argv))
    values: dict[str, Any] = {}
    for flag in FLAGS:
        given = getattr(namespace, flag.field)
        source, text = (f"--{flag.name}", given) if given is not None else (flag.env, None)
        if text is None:
            text = environ.get(flag.env, flag.default)
        if text == "" and flag.default == "":
            continue
        try:
            values[flag.field] = flag.parse(text)
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from None
    host, port = values.pop("listen")
    return Config(listen_host=host, listen_port=port, **values)
