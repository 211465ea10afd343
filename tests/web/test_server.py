"""Tests against a real waitress server: in this process, and the program as a subprocess."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from prometheus_client.samples import Sample

from exporter.web.server import DRAIN_TIMEOUT, Server, has_unread_input
from tests.http_helpers import (
    CAUSES,
    DIRECTIONS,
    EVENTS,
    FORM,
    OUTCOMES,
    answer,
    assert_invariant,
    fetch,
    hangup,
    new_call,
    parse_xml,
    text_samples,
    total,
    unread_bytes,
    value,
    wait_for,
)
from tests.in_process import build, new_tracker
from tests.programs import EXPIRE, EXPORTER, GRACE, SWEEP_SLACK, Start, clean_env

# --- A real server in this process -------------------------------------------------------------


@dataclass
class Live:
    """A running in-process server."""

    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: str) -> bytes:
        reply = fetch(self.base + "/webhook", body)
        assert reply.status == 200, reply.text
        return reply.body

    def samples(self) -> list[Sample]:
        reply = fetch(self.base + "/metrics")
        assert reply.status == 200
        return text_samples(reply.text)


@dataclass
class Running:
    """A server running `run()` in a thread of its own."""

    server: Server
    thread: threading.Thread


@pytest.fixture
def running() -> Iterator[Running]:
    app = build(new_tracker(forward_grace=60.0, expire_after=3600.0)).app
    server = Server(app, "127.0.0.1", 0, threads=4)
    thread = threading.Thread(target=server.run, name="test-server")
    thread.start()
    try:
        yield Running(server, thread)
    finally:
        server.stop()
        thread.join(timeout=15)
    assert not thread.is_alive(), "server.stop() did not end run()"


@pytest.fixture
def live(running: Running) -> Live:
    return Live(running.server.port)


@dataclass
class Case:
    """A sequence of webhook bodies and the statistics it must produce."""

    events: list[str]
    ended: dict[str, int]
    hangups: dict[str, int]
    unmatched: dict[str, int] = field(default_factory=dict)
    direction: str = "in"
    calls: int = 1


CASES = {
    "forward": Case(
        [
            new_call("A"),
            hangup("A", cause="forwarded"),
            new_call("B", orig="A", users=("Marty",), diversion="4921100000"),
            answer("B", user="Marty"),
            hangup("B"),
        ],
        ended={"answered": 1},
        hangups={"forwarded": 1, "normalClearing": 1},
    ),
    "transfer-old-leg-ends-first": Case(
        [
            new_call("A", users=("Doc",)),
            answer("A", user="Doc"),
            new_call("B", orig="A", users=("Marty",)),
            answer("B", user="Marty"),
            hangup("A"),
            hangup("B"),
        ],
        ended={"answered": 1},
        hangups={"normalClearing": 2},
    ),
    "transfer-new-leg-ends-first": Case(
        [
            new_call("A", users=("Doc",)),
            answer("A", user="Doc"),
            new_call("B", orig="A", users=("Marty",)),
            answer("B", user="Marty"),
            hangup("B"),
            hangup("A"),
        ],
        ended={"answered": 1},
        hangups={"normalClearing": 2},
    ),
    "voicemail-on-a-new-leg": Case(
        [
            new_call("A"),
            hangup("A", cause="forwarded"),
            new_call("B", orig="A", users=("voicemail",)),
            answer("B", user="voicemail"),
            hangup("B"),
        ],
        ended={"voicemail": 1},
        hangups={"forwarded": 1, "normalClearing": 1},
    ),
    "voicemail-on-the-same-leg": Case(
        [new_call("A"), answer("A", user="voicemail"), hangup("A")],
        ended={"voicemail": 1},
        hangups={"normalClearing": 1},
    ),
    "group-call": Case(
        [new_call("A", users=("Alice", "Bob", "Carol")), answer("A", user="Bob"), hangup("A")],
        ended={"answered": 1},
        hangups={"normalClearing": 1},
    ),
    "duplicate-hangup": Case(
        [new_call("A"), hangup("A", cause="cancel"), hangup("A", cause="cancel")],
        ended={"missed": 1},
        hangups={"cancel": 2},
        unmatched={"hangup": 1},
    ),
    "lost-new-call": Case(
        [answer("Z"), hangup("Z", cause="busy")],
        ended={},
        hangups={"busy": 1},
        unmatched={"answer": 1, "hangup": 1},
        calls=0,
    ),
    "outgoing": Case(
        [
            new_call("O", direction="out"),
            answer("O", direction="out"),
            hangup("O", direction="out"),
        ],
        ended={"answered": 1},
        hangups={"normalClearing": 1},
        direction="out",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_replayed_leg_sequence_is_counted(live: Live, case: Case) -> None:
    for body in case.events:
        reply = live.post(body)
        if body.startswith("event=newCall"):
            root = parse_xml(reply)
            assert root.attrib["onHangup"] == f"{live.base}/webhook"

    samples = live.samples()
    direction = case.direction
    assert value(samples, "sipgate_calls_total", direction=direction) == case.calls
    for outcome in OUTCOMES:
        ended = value(samples, "sipgate_calls_ended_total", direction=direction, outcome=outcome)
        assert ended == case.ended.get(outcome, 0), outcome
    for cause in CAUSES:
        hangups = value(samples, "sipgate_hangups_total", direction=direction, cause=cause)
        assert hangups == case.hangups.get(cause, 0), cause
    for event in EVENTS:
        unmatched = value(samples, "sipgate_events_unmatched_total", event=event)
        assert unmatched == case.unmatched.get(event, 0), event
        posted = sum(body.startswith(f"event={event}&") for body in case.events)
        assert value(samples, "sipgate_webhook_requests_total", event=event, code="200") == posted
    assert total(samples, "sipgate_calls_active") == 0
    assert total(samples, "sipgate_calls_total") == case.calls
    assert_invariant(samples)


def test_call_in_progress_is_active_over_http(live: Live) -> None:
    live.post(new_call("A"))
    samples = live.samples()
    assert value(samples, "sipgate_calls_active", direction="in", state="ringing") == 1
    assert_invariant(samples)

    live.post(answer("A"))
    samples = live.samples()
    assert value(samples, "sipgate_calls_active", direction="in", state="ringing") == 0
    assert value(samples, "sipgate_calls_active", direction="in", state="talking") == 1
    assert_invariant(samples)


def test_metrics_over_http_are_gzipped_when_accepted(live: Live) -> None:
    reply = fetch(live.base + "/metrics", headers={"Accept-Encoding": "gzip"})

    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.body[:2] == b"\x1f\x8b"


THREADS = 8
CALLS_PER_THREAD = 200


def test_concurrent_calls_are_all_answered_and_counted_once(live: Live) -> None:
    def place_calls(worker: int) -> Counter[int]:
        statuses: Counter[int] = Counter()
        connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
        try:
            for number in range(CALLS_PER_THREAD):
                call_id = f"{worker}-{number}"
                direction = DIRECTIONS[number % 2]
                for body in (
                    new_call(call_id, direction=direction),
                    answer(call_id, direction=direction),
                    hangup(call_id, direction=direction),
                ):
                    connection.request("POST", "/webhook", body, {"Content-Type": FORM})
                    response = connection.getresponse()
                    response.read()
                    statuses[response.status] += 1
        finally:
            connection.close()
        return statuses

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = sum(pool.map(place_calls, range(THREADS)), Counter[int]())

    calls = THREADS * CALLS_PER_THREAD
    assert statuses == {200: 3 * calls}
    samples = live.samples()
    for direction in DIRECTIONS:
        assert value(samples, "sipgate_calls_total", direction=direction) == calls / 2
        ended = value(samples, "sipgate_calls_ended_total", direction=direction, outcome="answered")
        assert ended == calls / 2
        normal = value(
            samples, "sipgate_hangups_total", direction=direction, cause="normalClearing"
        )
        assert normal == calls / 2
    for event in ("newCall", "answer", "hangup"):
        assert value(samples, "sipgate_webhook_requests_total", event=event, code="200") == calls
    assert total(samples, "sipgate_events_unmatched_total") == 0
    assert total(samples, "sipgate_calls_active") == 0
    assert value(samples, "sipgate_webhook_request_duration_seconds_count") == 3 * calls
    assert_invariant(samples)


def half_a_webhook(port: int, call_id: str) -> tuple[bytes, bytes]:
    """A POST to /webhook cut in two: the head with half the body, and the rest of the body."""
    body = new_call(call_id).encode()
    half = len(body) // 2
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body[:half], body[half:]


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # A connect racing the listening socket's close is reset instead of refused.
        return True
    return False


def test_stop_refuses_new_connections_and_finishes_the_request_in_flight(
    running: Running,
) -> None:
    port = running.server.port
    first, rest = half_a_webhook(port, "A")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(first)
        # Once the server has read all that, the request is in flight, not just in a buffer.
        wait_for(lambda: unread_bytes(port, sock.getsockname()[1]) == 0, timeout=10)

        running.server.stop()
        wait_for(lambda: refuses_connections(port), timeout=5)
        assert running.thread.is_alive(), "run() must wait for the request in flight"
        sock.sendall(rest)
        response = http.client.HTTPResponse(sock)
        response.begin()
        reply = response.read()

    assert response.status == 200
    assert parse_xml(reply).attrib["onAnswer"] == f"http://127.0.0.1:{port}/webhook"
    running.thread.join(timeout=5)
    assert not running.thread.is_alive()


def test_a_connection_not_yet_accepted_at_stop_is_served(running: Running) -> None:
    port = running.server.port
    waitress = running.server._server
    holding, release = threading.Event(), threading.Event()

    def hold_the_loop() -> None:
        holding.set()
        release.wait(10)

    waitress.trigger.pull_trigger(hold_the_loop)
    assert holding.wait(5)
    body = new_call("queued").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The kernel has completed the connection; waitress's loop, held, has not accepted it.
        sock.sendall(
            f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {FORM}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        running.server.stop()
        wait_for(lambda: bool(waitress.trigger.thunks), timeout=5)  # the stop waits its turn
        release.set()
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
    assert response.status == 200
    running.thread.join(timeout=DRAIN_TIMEOUT)
    assert not running.thread.is_alive()


def test_stop_closes_an_idle_kept_alive_connection_without_waiting_for_it(
    running: Running,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", running.server.port, timeout=10)
    try:
        connection.request("GET", "/-/healthy")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert not response.will_close
        stopped = time.monotonic()

        running.server.stop()
        running.thread.join(timeout=DRAIN_TIMEOUT)

        assert not running.thread.is_alive()
        assert time.monotonic() - stopped < DRAIN_TIMEOUT / 2
        assert connection.sock is not None
        assert connection.sock.recv(1) == b"", "the server closes the idle connection"
    finally:
        connection.close()


# --- The program as a subprocess ---------------------------------------------------------------


def test_forwarded_call_without_next_leg_ends_after_the_grace(start: Start) -> None:
    program = start()
    program.post(new_call("A"))
    hung_up = time.monotonic()
    program.post(hangup("A", cause="forwarded"))
    samples = program.samples()
    assert value(samples, "sipgate_calls_active", direction="in", state="ringing") == 1
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="forwarded") == 0

    def forwarded() -> list[Sample] | None:
        samples = program.samples()
        ended = value(samples, "sipgate_calls_ended_total", direction="in", outcome="forwarded")
        return samples if ended == 1 else None

    samples = wait_for(forwarded, timeout=GRACE + SWEEP_SLACK + 2)
    elapsed = time.monotonic() - hung_up
    assert GRACE <= elapsed < GRACE + SWEEP_SLACK
    assert total(samples, "sipgate_calls_active") == 0
    assert total(samples, "sipgate_calls_ended_total") == 1
    assert_invariant(samples)


def test_call_without_hangup_expires_and_leaves_the_active_gauge(start: Start) -> None:
    program = start()
    started = time.monotonic()
    program.post(new_call("A"))
    assert total(program.samples(), "sipgate_calls_active", direction="in") == 1

    def expired() -> list[Sample] | None:
        samples = program.samples()
        ended = value(samples, "sipgate_calls_ended_total", direction="in", outcome="expired")
        return samples if ended == 1 else None

    samples = wait_for(expired, timeout=EXPIRE + SWEEP_SLACK + 2)
    elapsed = time.monotonic() - started
    assert EXPIRE <= elapsed < EXPIRE + SWEEP_SLACK
    assert total(samples, "sipgate_calls_active") == 0
    assert_invariant(samples)
    # A hangup after expiry is unmatched and changes no call statistics.
    program.post(hangup("A"))
    samples = program.samples()
    assert value(samples, "sipgate_events_unmatched_total", event="hangup") == 1
    assert total(samples, "sipgate_calls_ended_total") == 1
    assert_invariant(samples)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_program_cleanly(start: Start, signum: signal.Signals) -> None:
    program = start()

    program.process.send_signal(signum)

    assert program.process.wait(timeout=10) == 0
    assert "stopped" in program.stderr
    assert "Traceback" not in program.stderr


def test_request_in_flight_at_sigterm_is_answered(start: Start) -> None:
    program = start()
    body = new_call("A").encode()
    half = len(body) // 2
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{program.port}\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", program.port), timeout=10) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(head.encode() + body[:half])
        # Once the server has read all that, the request is in flight, not just in a buffer.
        wait_for(lambda: unread_bytes(program.port, client_port) == 0, timeout=10)

        program.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in program.stderr, timeout=10)
        sock.sendall(body[half:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        reply = response.read()

    assert response.status == 200
    assert parse_xml(reply).attrib["onAnswer"] == f"{program.base}/webhook"
    assert program.process.wait(timeout=15) == 0
    assert "stopped" in program.stderr


def test_request_on_a_kept_alive_connection_at_sigterm_is_answered(start: Start) -> None:
    program = start()
    body = new_call("B").encode()
    half = len(body) // 2
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{program.port}\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", program.port), timeout=10) as sock:
        sock.sendall(f"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1:{program.port}\r\n\r\n".encode())
        first = http.client.HTTPResponse(sock)
        first.begin()
        assert first.status == 200
        first.read()
        # The next request may still sit unread in the kernel when the signal arrives.
        sock.sendall(head.encode() + body[:half])
        program.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in program.stderr, timeout=10)
        sock.sendall(body[half:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()

    assert response.status == 200
    assert program.process.wait(timeout=15) == 0


def run_exporter(*flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXPORTER, "--state.path=", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(**env),
        check=False,
    )


@pytest.mark.parametrize(
    ("flags", "env", "source"),
    [
        (["--calls.forward-grace=10x"], {}, "--calls.forward-grace"),
        (
            [],
            {"SIPGATE_EXPORTER_CALLS_FORWARD_GRACE": "10x"},
            "SIPGATE_EXPORTER_CALLS_FORWARD_GRACE",
        ),
    ],
    ids=["flag", "env"],
)
def test_bad_duration_exits_2_with_one_line(
    flags: list[str], env: dict[str, str], source: str
) -> None:
    result = run_exporter(*flags, **env)

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert source in lines[0]
    assert "10x" in lines[0]


# Flag, default and environment variable, as issue 2 names them.
HELP_FLAGS = [
    ("web.listen-address", ":9850", "SIPGATE_EXPORTER_WEB_LISTEN_ADDRESS"),
    ("web.threads", "4", "SIPGATE_EXPORTER_WEB_THREADS"),
    (
        "webhook.public-url",
        "derived from each request: its Host header, or behind a proxy listed in "
        "--web.trusted-proxies its X-Forwarded-Host and X-Forwarded-Proto",
        "SIPGATE_EXPORTER_PUBLIC_URL",
    ),
    ("calls.forward-grace", "10s", "SIPGATE_EXPORTER_CALLS_FORWARD_GRACE"),
    ("calls.expire-after", "4h", "SIPGATE_EXPORTER_CALLS_EXPIRE_AFTER"),
    ("log.level", "info", "SIPGATE_EXPORTER_LOG_LEVEL"),
    ("log.format", "text", "SIPGATE_EXPORTER_LOG_FORMAT"),
]


def test_help_lists_every_flag_with_default_and_env_var() -> None:
    result = run_exporter("--help")

    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag, default, env in HELP_FLAGS:
        entry = rf"--{re.escape(flag)} [A-Z_-]+ [^()]*\(default: {re.escape(default)}; env {env}\)"
        assert re.search(entry, text), flag


def test_port_in_use_fails_with_a_message_naming_the_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        result = run_exporter(f"--web.listen-address=127.0.0.1:{port}")

    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unread_input_keeps_a_connection_busy_during_the_drain() -> None:
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        assert not has_unread_input(server_side)
        client_side.sendall(b"POST /webhook HTTP/1.1\r\n")
        assert has_unread_input(server_side)
        assert has_unread_input(server_side), "peeking must not consume the bytes"
        server_side.recv(1024)
        assert not has_unread_input(server_side)
        client_side.close()
        assert not has_unread_input(server_side)
