"""Flags, environment variables, their validation, and the choice of subcommand."""

from __future__ import annotations

import pytest

from exporter import __version__
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
        (["--web.grafana-url=grafana"], {}, "--web.grafana-url: invalid URL 'grafana'"),
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
        (["serve"], "argument command: invalid choice: 'serve' (choose from 'simulate', 'state')"),
        (
            ["--web.listen=:1"],
            "unrecognized arguments: --web.listen=:1 (did you mean --web.listen-address?)",
        ),
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


BOOLEANS = {
    **dict.fromkeys(("true", "yes", "on", "1", "TRUE", "On"), True),
    **dict.fromkeys(("false", "no", "off", "0", "False", "OFF"), False),
}


@pytest.mark.parametrize(("spelling", "expected"), BOOLEANS.items())
def test_booleans_take_the_same_spellings_as_flags_and_variables(
    spelling: str, expected: bool
) -> None:
    by_flag = parse_config([f"--state.reset={spelling}"], {})
    by_variable = parse_config([], {"SIPGATE_EXPORTER_STATE_RESET": spelling})
    assert by_flag.state_reset is by_variable.state_reset is expected


def test_a_bad_boolean_says_which_spellings_work() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(["--webhook.verify-signature=maybe"], {})
    assert str(caught.value) == (
        "--webhook.verify-signature: invalid value 'maybe' "
        "(use true or false; also yes/no, on/off, 1/0)"
    )


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["--log.level=warning"], "log_level", "warn"),
        (["--log.level=WARNING"], "log_level", "warn"),
        (["--log.level=INFO"], "log_level", "info"),
        (["--log.format=JSON"], "log_format", "json"),
        (["--state.sync=Full"], "state_sync", "full"),
    ],
)
def test_choices_ignore_case_and_warning_means_warn(
    argv: list[str], field: str, expected: str
) -> None:
    assert getattr(parse_config(argv, {}), field) == expected


def test_a_variable_s_choice_ignores_case_too() -> None:
    assert parse_config([], {"SIPGATE_EXPORTER_LOG_LEVEL": "Debug"}).log_level == "debug"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--web.thr=2"], "unrecognized arguments: --web.thr=2 (did you mean --web.threads?)"),
        (["--web.thr", "2"], "unrecognized arguments: --web.thr (did you mean --web.threads?)"),
        (["--state.res"], "unrecognized arguments: --state.res (did you mean --state.reset?)"),
        (["--nonsense"], "unrecognized arguments: --nonsense"),
    ],
)
def test_abbreviated_flags_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_command(argv, {})
    assert str(caught.value) == message


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_command(["--version"], {})
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"sipgate-exporter {__version__}"


def help_text() -> str:
    return " ".join(build_parser().format_help().split())


def test_help_says_what_the_readme_says_about_the_metrics_address() -> None:
    text = help_text()
    assert (
        "a separate address (e.g. 127.0.0.1:9851) for /metrics, health and readiness; "
        "the main address then answers /metrics with 404"
    ) in text


def test_help_says_how_the_public_url_is_derived() -> None:
    text = help_text()
    assert (
        "default: derived from each request: its Host header, or behind a proxy listed in "
        "--web.trusted-proxies its X-Forwarded-Host and X-Forwarded-Proto"
    ) in text
    assert "a URL without a path gets /webhook appended" in text


def test_help_names_the_spellings_of_durations_and_booleans() -> None:
    text = help_text()
    assert "Durations: 500ms, 10s, 5m, 4h, 1h30m, 3d (days), 1w (weeks)" in text
    assert "Booleans: true or false; also yes/no, on/off, 1/0" in text
    assert "a boolean flag alone means true" in text


def test_grafana_url_from_flag_or_variable() -> None:
    url = "https://grafana.example.com/d/sipgate/calls?orgId=1"
    assert parse_config([], {}).grafana_url is None
    assert parse_config([f"--web.grafana-url={url}"], {}).grafana_url == url
    environ = {"SIPGATE_EXPORTER_WEB_GRAFANA_URL": url}
    assert parse_config([], environ).grafana_url == url
