"""Flags, environment variables, their validation, and the choice of subcommand."""

from __future__ import annotations

import pytest

from exporter.config.command_line import build_parser, parse_command, parse_config
from exporter.config.flags import FLAGS, Config
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


def test_no_subcommand_serves() -> None:
    argv = ["--web.threads=8", "--state.reset"]
    command = parse_command(argv, {})
    assert isinstance(command, Config)
    assert command == parse_config(argv, {})
    assert command.threads == 8


def test_simulate_subcommand_is_ready_to_run() -> None:
    # --calls would be ambiguous with the exporter's --calls.* flags if abbreviations were on.
    command = parse_command(["simulate", "--calls", "3", "--target", "http://h/webhook"], {})
    assert not isinstance(command, Config)
    assert callable(command)
    with pytest.raises(ConfigError, match="not a subcommand"):
        parse_config(["simulate"], {})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log.level=debug", "simulate"], "--log.level does not apply to simulate"),
        (["serve"], "argument command: invalid choice: 'serve' (choose from 'simulate')"),
        (["--web.listen=:1"], "unrecognized arguments: --web.listen=:1"),
    ],
)
def test_misplaced_words_are_config_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_command(argv, {})
    assert str(caught.value) == message


def test_help_names_the_simulate_subcommand() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "simulate send planned sipgate.io traffic to a running exporter" in text
    assert "without one, the exporter serves" in text
