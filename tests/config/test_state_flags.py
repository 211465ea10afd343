"""--state.url and --state.replica: the shared state's flags, and what they exclude."""

from __future__ import annotations

import socket

import pytest

from exporter.config.command_line import parse_config
from exporter.errors import ConfigError

URL = "postgresql://sipgate:s3cret@db.example:5432/sipgate"


def test_a_state_url_replaces_the_state_file_and_names_the_replica_after_the_host() -> None:
    config = parse_config([f"--state.url={URL}"], {})
    assert config.state_url == URL
    assert config.state_path is None
    assert config.state_replica == socket.gethostname()
    assert "s3cret" not in repr(config)


def test_the_replica_name_comes_from_the_flag_or_the_environment() -> None:
    environ = {"SIPGATE_EXPORTER_STATE_URL": URL, "SIPGATE_EXPORTER_STATE_REPLICA": "exporter-2"}
    assert parse_config([], environ).state_replica == "exporter-2"
    assert parse_config(["--state.replica=b.1"], environ).state_replica == "b.1"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ([f"--state.url={URL}", "--state.path=x.db"], {}, "--state.path and --state.url"),
        (
            [f"--state.url={URL}"],
            {"SIPGATE_EXPORTER_STATE_PATH": "/data/x.db"},
            "set SIPGATE_EXPORTER_STATE_PATH to empty",
        ),
        ([f"--state.url={URL}", "--state.reset"], {}, "--state.reset and --state.url"),
        ([f"--state.url={URL}", "--state.sync=full"], {}, "--state.sync and --state.url"),
        (["--state.url=mysql://db.example/sipgate"], {}, "--state.url: expected a URL like"),
        ([f"--state.url={URL}", "--state.replica=two words"], {}, "invalid replica name"),
        (["--state.call-records-numbers=masked"], {}, "applies to the call records of --state.url"),
        (
            [],
            {"SIPGATE_EXPORTER_STATE_CALL_RECORDS_RETENTION": "7d"},
            "--state.call-records-retention applies",
        ),
        ([f"--state.url={URL}", "--state.call-records-numbers=some"], {}, "choose from full"),
    ],
)
def test_refused_combinations_say_why(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(argv, environ)
    assert "s3cret" not in str(caught.value)


def test_an_empty_replica_name_means_the_host_name() -> None:
    config = parse_config([f"--state.url={URL}", "--state.replica="], {})
    assert config.state_replica == socket.gethostname()


def test_an_empty_state_path_from_the_image_is_no_conflict() -> None:
    config = parse_config([f"--state.url={URL}"], {"SIPGATE_EXPORTER_STATE_PATH": ""})
    assert config.state_path is None


def test_call_records_flags_with_a_state_url() -> None:
    config = parse_config(
        [
            f"--state.url={URL}",
            "--state.call-records-retention=7d",
            "--state.call-records-numbers=MASKED",
        ],
        {},
    )
    assert config.call_records_retention == 7 * 86400
    assert config.call_records_numbers == "masked"
    assert parse_config([f"--state.url={URL}"], {}).call_records_numbers == "full"
