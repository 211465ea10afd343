"""Flags, environment variables and their validation."""

from __future__ import annotations

import pytest

from exporter.config.flags import (
    FLAGS,
    Config,
    build_parser,
    parse_config,
    parse_duration,
    parse_listen_address,
    parse_public_url,
)
from exporter.errors import ConfigError


def test_defaults() -> None:
    assert parse_config([], {}) == Config(
        listen_host="0.0.0.0",
        listen_port=9850,
        threads=4,
        public_url=None,
        forward_grace=10.0,
        expire_after=14400.0,
        log_level="info",
        log_format="text",
    )


def test_flags_override_environment() -> None:
    environ = {
        "SIPGATE_EXPORTER_CALLS_FORWARD_GRACE": "30s",
        "SIPGATE_EXPORTER_LOG_FORMAT": "json",
        "SIPGATE_EXPORTER_PUBLIC_URL": "https://env.example.com/hook",
    }
    config = parse_config(
        ["--calls.forward-grace=5s", "--web.listen-address", "[::1]:8080"], environ
    )
    assert config.forward_grace == 5.0
    assert config.log_format == "json"
    assert config.public_url == "https://env.example.com/hook"
    assert (config.listen_host, config.listen_port) == ("::1", 8080)


def test_public_url_has_the_documented_short_environment_name() -> None:
    config = parse_config([], {"SIPGATE_EXPORTER_PUBLIC_URL": "https://stats.example.com/webhook"})
    assert config.public_url == "https://stats.example.com/webhook"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "10x", "s", "-5s", "5s ", "1h-5m", "ten seconds"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(":9850", ("0.0.0.0", 9850)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::]:1", ("::", 1))],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9850", "host:", "host:port", ":70000"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid listen address"):
        parse_listen_address(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://stats.example.com", "https://stats.example.com/webhook"),
        ("https://stats.example.com/", "https://stats.example.com/webhook"),
        (
            "https://u:p@stats.example.com/sipgate/hook",
            "https://u:p@stats.example.com/sipgate/hook",
        ),
    ],
)
def test_public_urls(text: str, expected: str) -> None:
    assert parse_public_url(text) == expected


@pytest.mark.parametrize("text", ["stats.example.com/webhook", "ftp://x/webhook", "https://"])
def test_bad_public_urls(text: str) -> None:
    with pytest.raises(ValueError, match="invalid public URL"):
        parse_public_url(text)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--calls.forward-grace=10x"], {}, "--calls.forward-grace: invalid duration '10x'"),
        (
            [],
            {"SIPGATE_EXPORTER_CALLS_EXPIRE_AFTER": "soon"},
            "SIPGATE_EXPORTER_CALLS_EXPIRE_AFTER",
        ),
        (["--log.level=loud"], {}, "choose from debug, info, warn, error"),
        (["--web.threads=0"], {}, "--web.threads: invalid number"),
        (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_values_name_their_source(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        parse_config(argv, environ)
    assert "\n" not in str(caught.value)


def test_help_names_every_flag_default_and_environment_variable() -> None:
    text = build_parser().format_help()
    for flag in FLAGS:
        assert f"--{flag.name}" in text
        assert flag.env in " ".join(text.split())
    assert "default: 10s" in text
    assert "default: :9850" in text
