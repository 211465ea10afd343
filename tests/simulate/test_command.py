"""`sipgate-exporter simulate`: its flags, signing and basic auth end to end, its exit status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exporter.config.command_line import parse_command
from exporter.domain.tracker import CallTracker
from exporter.simulate.command import build_parser, main, profile_from
from exporter.web.guard import Guard, basic_auth_token
from exporter.web.server import Server
from tests.http_helpers import free_port
from tests.in_process import build, new_tracker

GRACE = 10.0
EXPIRE = 4 * 3600.0


def test_flags_build_the_profile() -> None:
    args = build_parser().parse_args(["--rate", "12", "--answer-probability", "0.5"])
    profile = profile_from(args)
    assert profile.calls_per_minute == 12
    assert profile.answer_probability == 0.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--answer-probability", "1.5"])


def test_flags_shape_the_call_centre_cases() -> None:
    flags = {
        "--short-abandon-probability": "short_abandon_probability",
        "--slow-answer-probability": "slow_answer_probability",
        "--unnamed-answer-probability": "unnamed_answer_probability",
        "--call-again-probability": "call_again_probability",
        "--callback-probability": "callback_probability",
    }
    for value, (flag, field) in enumerate(flags.items(), start=1):
        profile = profile_from(build_parser().parse_args([flag, f"0.{value}"]))
        assert getattr(profile, field) == value / 10, flag


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    """`key` as an unencrypted PEM file at `path`, as --sign-key reads it."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture
def guarded_url() -> Iterator[tuple[str, rsa.RSAPrivateKey, CallTracker]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tracker = new_tracker(forward_grace=GRACE, expire_after=EXPIRE)
    guard = Guard(signature_key=key.public_key(), basic_auth=basic_auth_token("sim", "p@ss"))
    server = Server(build(tracker, guard=guard).app, "127.0.0.1", 0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.port}/webhook", key, tracker
    server.stop()
    thread.join(timeout=15)


def test_signed_run_with_basic_auth_in_the_target_is_accepted(
    guarded_url: tuple[str, rsa.RSAPrivateKey, CallTracker],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, key, tracker = guarded_url
    key_file = write_private_key(tmp_path / "sign.pem", key)
    flags = ["--rate", "6000", "--speed", "1000", "--calls", "20", "--seed", "4"]
    target = f"http://sim:p%40ss@{address}"
    assert main(["--target", target, "--sign-key", str(key_file), *flags]) == 0
    assert sum(tracker.stats.calls_started.values()) == 20
    captured = capsys.readouterr()
    assert "errors: none" in captured.out
    assert "p%40ss" not in captured.err

    assert sum(tracker.stats.calls_started.values()) == 20


@pytest.mark.parametrize(
    ("credentials", "signed", "reason", "fix"),
    [
        (
            "sim:p%40ss@",
            False,
            "refused the event with 403: missing X-Sipgate-Signature header",
            "start the exporter with --webhook.verify-signature=false for simulated events",
        ),
        (
            "",
            True,
            "refused the event with 401: missing basic auth credentials",
            "put the exporter's basic auth credentials into --target",
        ),
    ],
    ids=["unsigned", "no-credentials"],
)
def test_a_refusal_stops_the_run_with_the_reason_and_the_fix(
    guarded_url: tuple[str, rsa.RSAPrivateKey, CallTracker],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    credentials: str,
    signed: bool,
    reason: str,
    fix: str,
) -> None:
    address, key, tracker = guarded_url
    key_file = write_private_key(tmp_path / "sign.pem", key)
    sign = ["--sign-key", str(key_file)] if signed else []
    flags = ["--rate", "6000", "--speed", "1000", "--calls", "20", "--seed", "4", *sign]

    assert main(["--target", f"http://{credentials}{address}", *flags]) == 1

    captured = capsys.readouterr()
    assert captured.out == "", "no table that looks like success"
    assert reason in captured.err
    assert fix in captured.err
    assert sum(tracker.stats.calls_started.values()) == 0


def test_a_refused_connection_stops_the_run_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"http://127.0.0.1:{free_port()}/webhook"

    assert main(["--target", target, "--rate", "6000", "--speed", "1000", "--calls", "5"]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot connect to {target}: connection refused" in captured.err
    assert "start the exporter first" in captured.err


@pytest.mark.parametrize("content", [b"", b"-----BEGIN PUBLIC KEY-----\n"], ids=["empty", "public"])
def test_bad_sign_key_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    key_file = tmp_path / "sign.pem"
    key_file.write_bytes(content)
    assert main(["--sign-key", str(key_file), "--calls", "1"]) == 2
    assert "is not an unencrypted PEM private key" in capsys.readouterr().err
    assert main(["--sign-key", str(tmp_path / "missing.pem"), "--calls", "1"]) == 2
    assert "cannot read key file" in capsys.readouterr().err


def test_the_subcommand_runs_the_simulator(
    exporter_url: tuple[str, CallTracker], capsys: pytest.CaptureFixture[str]
) -> None:
    url, tracker = exporter_url
    flags = ["--target", url, "--rate", "6000", "--speed", "1000", "--calls", "5"]
    command = parse_command(["simulate", *flags], {})
    assert callable(command)
    assert command() == 0
    assert sum(tracker.stats.calls_started.values()) == 5
    assert "total                      5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--rate", "0"], ["--calls", "x"], ["--no-such-flag"], ["--rat", "3"]],
    ids=["help", "bad-value", "bad-type", "unknown", "abbreviated"],
)
def test_the_subcommand_answers_as_the_standalone_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as standalone:
        build_parser().parse_args(argv)
    expected = capsys.readouterr()
    with pytest.raises(SystemExit) as subcommand:
        parse_command(["simulate", *argv], {})
    assert subcommand.value.code == standalone.value.code
    assert capsys.readouterr() == expected
