"""Parsers of single flag and environment values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.config.values import (
    one_of,
    parse_bool,
    parse_duration,
    parse_link_url,
    parse_listen_address,
    parse_public_url,
    parse_relay_timeout,
    parse_retries,
    parse_size,
    parse_timeout,
    read_secret,
)


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
    ("text", "expected"), [("16384", 16384), ("16KiB", 16384), ("1MiB", 1048576), ("7B", 7)]
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0", "16kb", "-1", "1.5MiB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [("TRUE", True), ("no", False), (" 1 ", True)])
def test_bools(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


@pytest.mark.parametrize(
    ("parse", "good", "value", "bad"),
    [
        (parse_timeout, "1s", 1.0, "500ms"),
        (parse_relay_timeout, "10s", 10.0, "0s"),
        (parse_retries, "0", 0, "11"),
    ],
)
def test_bounded_values(parse: Callable[[str], float], good: str, value: float, bad: str) -> None:
    assert parse(good) == value
    with pytest.raises(ValueError, match=repr(bad)):
        parse(bad)


def test_one_of_names_the_choices() -> None:
    parse = one_of(("text", "json"))
    assert parse("json") == "json"
    with pytest.raises(ValueError, match="choose from text, json"):
        parse("xml")


def test_secret_file_errors_never_show_its_content(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("s3cret\n")
    assert read_secret(str(path)) == "s3cret"
    path.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_secret(str(path))
    path.write_bytes(b"\xff-s3cret")
    with pytest.raises(ValueError, match="not UTF-8 text") as caught:
        read_secret(str(path))
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(spelling, True) for spelling in ("true", "yes", "on", "1", "On", "YES")],
        *[(spelling, False) for spelling in ("false", "no", "off", "0", "Off", "NO")],
    ],
)
def test_bools_accept_every_documented_spelling(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


def test_a_bad_bool_names_every_spelling() -> None:
    with pytest.raises(ValueError, match=r"use true or false; also yes/no, on/off, 1/0"):
        parse_bool("maybe")


def test_a_bad_duration_names_days_and_weeks() -> None:
    with pytest.raises(ValueError, match=r"3d, 1w"):
        parse_duration("soon")
    assert parse_duration("1w") == 7 * 86400.0


def test_one_of_ignores_case_and_knows_aliases() -> None:
    parse = one_of(("debug", "warn"), aliases={"warning": "warn"})
    assert parse("DEBUG") == "debug"
    assert parse("Warning") == "warn"
    with pytest.raises(ValueError, match="choose from debug, warn"):
        parse("loud")


@pytest.mark.parametrize(
    "text",
    [
        "https://grafana.example.com/d/sipgate/sipgate-calls?orgId=1",
        "http://localhost:3000/d/sipgate",
        "https://grafana.example.com",
    ],
)
def test_link_urls_are_kept_as_given(text: str) -> None:
    assert parse_link_url(text) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grafana.example.com/d/x", "invalid URL"),
        ("ftp://grafana.example.com/", "invalid URL"),
        ("https://", "invalid URL"),
        ("https://admin:secret@grafana.example.com/", "without credentials"),
    ],
)
def test_bad_link_urls(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_link_url(text)
    assert "secret" not in str(caught.value)
