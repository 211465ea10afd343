"""The traffic simulator: SIPGATE.md's sequences, reproducible, and counted exactly as sent."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exporter.domain.events import NewCall, parse_event
from exporter.domain.tracker import CallTracker
from exporter.metrics import create_registry, new_statistics
from exporter.simulate.command import Sender, build_parser, main, profile_from, run
from exporter.simulate.traffic import PlannedCall, TrafficPlanner, TrafficProfile
from exporter.web.app import create_app
from exporter.web.guard import Guard, basic_auth_token
from exporter.web.server import Server

GRACE = 10.0
EXPIRE = 4 * 3600.0
BUSY_PROFILE = TrafficProfile(
    calls_per_minute=30,
    forward_probability=0.3,
    transfer_probability=0.3,
    group_probability=0.5,
    lost_followup_probability=0.05,
)


def plan(count: int, seed: int = 3, profile: TrafficProfile = BUSY_PROFILE) -> list[PlannedCall]:
    return list(islice(TrafficPlanner(profile, seed), count))


def fields(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode(), keep_blank_values=True)


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    assert plan(50, seed=9) == plan(50, seed=9)
    assert plan(50, seed=9) != plan(50, seed=10)


def test_every_body_parses_and_every_call_starts_with_new_call() -> None:
    for call in plan(500):
        first = parse_event(call.events[0].body)
        assert isinstance(first, NewCall)
        assert first.orig_call_id == first.call_id
        times = [event.at for event in call.events]
        assert times == sorted(times)
        for event in call.events:
            assert (
                parse_event(event.body)
                .__class__.__name__.lower()
                .startswith(event.name[:3].lower())
            )


def test_forwards_and_voicemail_follow_the_documented_sequence() -> None:
    shapes: Counter[str] = Counter()
    for call in plan(1500):
        names = [event.name for event in call.events]
        parsed = [fields(event.body) for event in call.events]
        if names[:3] == ["newCall", "hangup", "newCall"]:
            assert parsed[1]["cause"] == ["forwarded"]
            assert parsed[2]["origCallId"] == parsed[0]["callId"]
            voicemail = parsed[2]["user[]"] == ["voicemail"]
            shapes["voicemail" if voicemail else "forward"] += 1
            assert call.outcome == ("voicemail" if voicemail else "answered")
        elif names == ["newCall", "answer", "newCall", "answer", "hangup", "hangup"]:
            assert parsed[4]["callId"] == parsed[0]["callId"]
            assert parsed[5]["callId"] == parsed[2]["callId"]
            shapes["transfer"] += 1
        if len(parsed[0].get("user[]", [])) > 1:
            shapes["group"] += 1
        if parsed[0]["from"] == ["anonymous"]:
            shapes["anonymous"] += 1
    assert min(shapes.values()) > 10, shapes
    assert set(shapes) == {"voicemail", "forward", "transfer", "group", "anonymous"}


def test_tracker_records_exactly_the_planned_outcomes() -> None:
    calls = plan(3000, seed=11)
    events = sorted(
        ((event.at, index, event) for index, call in enumerate(calls) for event in call.events),
        key=lambda item: (item[0], item[1]),
    )
    tracker = CallTracker(new_statistics(), forward_grace=GRACE, expire_after=EXPIRE)
    for at, _, event in events:
        tracker.sweep(at)
        tracker.handle(parse_event(event.body), at)
    tracker.sweep(events[-1][0] + EXPIRE + GRACE)
    planned = Counter((call.direction, call.outcome) for call in calls)
    recorded = {key[:2]: n for key, n in tracker.stats.calls_ended.items() if n}
    assert recorded == dict(planned)
    assert sum(tracker.stats.unmatched.values()) == 0


def test_flags_build_the_profile() -> None:
    args = build_parser().parse_args(["--rate", "12", "--answer-probability", "0.5"])
    profile = profile_from(args)
    assert profile.calls_per_minute == 12
    assert profile.answer_probability == 0.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--answer-probability", "1.5"])


@pytest.fixture
def exporter_url() -> Iterator[tuple[str, CallTracker]]:
    tracker = CallTracker(new_statistics(), forward_grace=GRACE, expire_after=EXPIRE)
    app = create_app(tracker, create_registry(tracker, process_metrics=False))
    server = Server(app, "127.0.0.1", 0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/webhook", tracker
    server.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()


def test_simulated_run_over_http_is_counted_as_sent(exporter_url: tuple[str, CallTracker]) -> None:
    url, tracker = exporter_url
    profile = TrafficProfile(calls_per_minute=6000, median_wait=1.0, median_talk=5.0)
    progress = io.StringIO()
    tally = run(
        TrafficPlanner(profile, seed=5),
        Sender(url),
        speed=200.0,
        max_calls=300,
        progress=progress,
        progress_interval=0.2,
    )
    assert not tally.errors
    assert sum(tally.calls.values()) == 300
    assert tally.in_flight == 0
    tracker.sweep(time.time() + GRACE)  # let forwards that never continued run out of grace
    recorded = {key[:2]: n for key, n in tracker.stats.calls_ended.items() if n}
    assert recorded == dict(tally.calls)
    assert tracker.open_calls == 0
    assert "calls started" in progress.getvalue()
    summary = tally.summary()
    assert "total                    300" in summary
    assert "errors: none" in summary


def test_unreachable_target_is_counted_not_raised() -> None:
    tally = run(
        TrafficPlanner(TrafficProfile(calls_per_minute=6000), seed=1),
        Sender("http://127.0.0.1:9/webhook", timeout=1.0),
        speed=1000.0,
        max_calls=3,
    )
    assert tally.errors["connection"] > 0
    assert sum(tally.calls.values()) == 0


@pytest.fixture
def guarded_url() -> Iterator[tuple[str, rsa.RSAPrivateKey, CallTracker]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tracker = CallTracker(new_statistics(), forward_grace=GRACE, expire_after=EXPIRE)
    guard = Guard(signature_key=key.public_key(), basic_auth=basic_auth_token("sim", "p@ss"))
    app = create_app(tracker, create_registry(tracker, process_metrics=False), guard=guard)
    server = Server(app, "127.0.0.1", 0, threads=2)
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
    key_file = tmp_path / "sign.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    flags = ["--rate", "6000", "--speed", "1000", "--calls", "20", "--seed", "4"]
    target = f"http://sim:p%40ss@{address}"
    assert main(["--target", target, "--sign-key", str(key_file), *flags]) == 0
    assert sum(tracker.stats.calls_started.values()) == 20
    captured = capsys.readouterr()
    assert "errors: none" in captured.out
    assert "p%40ss" not in captured.err

    assert main(["--target", target, *flags]) == 1  # unsigned
    assert "http_403" in capsys.readouterr().out
    assert main(["--target", f"http://{address}", "--sign-key", str(key_file), *flags]) == 1
    assert "http_401" in capsys.readouterr().out
    assert sum(tracker.stats.calls_started.values()) == 20


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
