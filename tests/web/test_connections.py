"""Connection limits: deadlines, a cap per address, the allow-list at accept, and a flood."""

from __future__ import annotations

import http.client
import logging
import math
import resource
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from exporter.config.command_line import parse_config
from exporter.config.flags import Config
from exporter.service import build_connection_limits, build_server
from exporter.web.connections import (
    IDLE,
    PER_CLIENT,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    SOURCE,
    SWEEP_INTERVAL,
    ConnectionLimits,
    DroppedConnections,
    Timeouts,
    client_of,
    fit_connection_limit,
)
from exporter.web.guard import parse_networks
from exporter.web.server import Server
from tests.http_helpers import FORM, fetch, free_port, new_call, text_samples, value, wait_for
from tests.in_process import build
from tests.programs import Start

ATTACKER: Final = "127.0.0.1"
# Linux routes all of 127.0.0.0/8 to the loopback interface: other sources on one machine.
CLIENT: Final = "127.0.0.2"
STRANGER: Final = "127.0.0.3"
# A request head cut short: every byte after it extends a header that never ends.
PARTIAL_HEAD: Final = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: "
# How soon a refused connection must be seen closed.
AT_ONCE: Final = 1.0

# --- Pure parts --------------------------------------------------------------------------------


def never_asked(_peer: str) -> int:
    raise AssertionError("the count is asked only when it decides")


def test_refusal_by_source_then_by_count_and_never_for_a_trusted_proxy() -> None:
    limits = ConnectionLimits(
        max_per_client=2,
        allowed_networks=parse_networks("198.51.100.0/24"),
        proxies=parse_networks("10.0.0.1/32"),
    )

    assert limits.refusal("203.0.113.9", never_asked) == SOURCE
    assert limits.refusal("::ffff:203.0.113.9", never_asked) == SOURCE
    assert limits.refusal("198.51.100.7", lambda _: 1) is None
    assert limits.refusal("198.51.100.7", lambda _: 2) == PER_CLIENT
    assert limits.refusal("10.0.0.1", never_asked) is None
    assert ConnectionLimits(max_per_client=2).refusal("203.0.113.9", lambda _: 1) is None


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("not an address", "not an address"),
    ],
)
def test_an_ipv6_64_is_one_client_for_the_cap(peer: str, client: str) -> None:
    assert client_of(peer) == client


def test_proxies_and_allow_listed_peers_count_toward_no_cap() -> None:
    limits = ConnectionLimits(
        proxies=parse_networks("2001:db8:1:2::10/128"),
        uncapped=parse_networks("217.10.77.0/24"),
    )
    assert not limits.capped("2001:db8:1:2::10")
    assert not limits.capped("217.10.77.5")
    assert limits.capped("2001:db8:1:2::11")  # the proxy's /64 neighbour is a client like any
    assert limits.capped("203.0.113.9")


def test_sipgate_s_allow_listed_addresses_are_never_capped() -> None:
    sipgate = parse_networks("217.116.118.254/32")
    limits = ConnectionLimits(max_per_client=2, allowed_networks=sipgate, uncapped=sipgate)
    shared_port = ConnectionLimits(max_per_client=2, uncapped=sipgate)

    assert limits.refusal("217.116.118.254", never_asked) is None
    assert shared_port.refusal("217.116.118.254", never_asked) is None
    assert shared_port.refusal("203.0.113.9", lambda _: 2) == PER_CLIENT
    config = parse_config(["--webhook.allowed-networks=217.116.118.254/32"], {})
    assert build_connection_limits(config, 1).refusal("217.116.118.254", never_asked) is None


@dataclass(eq=False)
class FakeChannel:
    """What Timeouts reads of a waitress channel."""

    requests: list[object] = field(default_factory=list)
    request: object | None = None
    last_activity: float = 0.0


def test_request_deadline_holds_however_steadily_the_request_trickles() -> None:
    timeouts = Timeouts(request_timeout=10, read_timeout=3)
    trickling = FakeChannel(request=object())

    for second in range(10):
        trickling.last_activity = 1000.0 + second  # a byte every second
        assert timeouts.expired([trickling], now=float(second)) == []
    trickling.last_activity = 1010.0
    assert timeouts.expired([trickling], now=10.0) == [(trickling, REQUEST_TIMEOUT)]


def test_silence_closes_mid_request_and_between_requests_but_never_a_reply() -> None:
    timeouts = Timeouts(request_timeout=60, read_timeout=3)
    silent = FakeChannel(request=object())
    idle = FakeChannel()
    answering = FakeChannel(requests=[object()])

    assert timeouts.expired([silent, idle, answering], now=0.0) == []
    assert timeouts.expired([silent, idle, answering], now=3.0) == [
        (silent, READ_TIMEOUT),
        (idle, IDLE),
    ]


def test_wall_clock_steps_in_activity_stamps_do_not_skew_the_timeouts() -> None:
    # waitress stamps activity with time.time(); an hour's step back must not keep it an hour.
    timeouts = Timeouts(request_timeout=60, read_timeout=3)
    idle = FakeChannel(last_activity=1_800_000_000.0)
    assert timeouts.expired([idle], now=0.0) == []
    idle.last_activity = 1_800_000_000.0 - 3600  # active again, after a step back
    assert timeouts.expired([idle], now=2.0) == []
    assert timeouts.expired([idle], now=5.0) == [(idle, IDLE)]


def test_a_new_request_on_a_kept_alive_connection_gets_its_own_deadline() -> None:
    timeouts = Timeouts(request_timeout=5, read_timeout=60)
    kept = FakeChannel(request=object())
    assert timeouts.expired([kept], now=0.0) == []
    kept.request = object()  # the first one arrived whole; the next one began
    assert timeouts.expired([kept], now=4.0) == []
    assert timeouts.expired([kept], now=9.0) == [(kept, REQUEST_TIMEOUT)]


def test_flags_and_their_variables_set_the_limits() -> None:
    config = parse_config(
        [
            "--web.request-timeout=5s",
            "--web.max-connections=2000",
            "--web.trusted-proxies=10.0.0.1",
        ],
        {"SIPGATE_EXPORTER_WEB_MAX_CONNECTIONS_PER_CLIENT": "8"},
    )

    limits = build_connection_limits(config, 1)

    proxy = parse_networks("10.0.0.1")
    assert limits == ConnectionLimits(2000, 8, 5.0, uncapped=proxy, proxies=proxy)
    assert Config().max_connections_per_client == ConnectionLimits().max_per_client


@pytest.fixture
def open_files() -> Iterator[tuple[int, int]]:
    """The open-files limits before the test, restored after it."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_open_files_limit_is_raised_to_fit_the_connections(open_files: tuple[int, int]) -> None:
    _, hard = open_files
    if hard != resource.RLIM_INFINITY and hard < 3000:
        pytest.fail(f"the hard limit of open files here ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    assert fit_connection_limit(1000, 2) == 1000

    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2000


def test_a_low_hard_limit_lowers_the_connection_limit_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (512, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: set_to.append(limits))

    with caplog.at_level(logging.WARNING):
        fitting = fit_connection_limit(1000, 2)

    assert set_to == [(1024, 1024)]
    assert fitting == (1024 - 64) // 2
    assert "ulimit -n" in caplog.text


# --- A real server in this process -------------------------------------------------------------


Serve = Callable[..., Server]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start in-process servers with the given limits; stop them after the test."""
    running: list[tuple[Server, threading.Thread]] = []

    def start(limits: ConnectionLimits, **options: Any) -> Server:
        server = Server(build().app, "127.0.0.1", 0, 2, limits=limits, **options)
        thread = threading.Thread(target=server.run, name="test-server", daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.stop()
        thread.join(timeout=15)
        assert not thread.is_alive()


def connect(port: int, source: str = ATTACKER) -> socket.socket:
    """A TCP connection to the server from `source`."""
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds`, reading whatever it answered."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            try:
                if not sock.recv(4096):
                    return True
            except ConnectionResetError:
                return True
    return False


def status(port: int, source: str, path: str = "/-/healthy", timeout: float = 5.0) -> int:
    """The status of one GET from `source`."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def served(port: int, source: str) -> bool:
    """Whether a GET from `source` is answered 200; False while its connection is refused."""
    try:
        return status(port, source) == 200
    except OSError:
        return False


def test_trickling_request_is_closed_at_the_deadline_and_an_idle_one_kept(serve: Serve) -> None:
    dropped = DroppedConnections()
    deadline = 1.5
    server = serve(ConnectionLimits(request_timeout=deadline), read_timeout=10, dropped=dropped)
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    kept.request("GET", "/-/healthy")
    kept.getresponse().read()
    kept_socket = kept.sock

    with connect(server.port) as sock:
        sock.sendall(PARTIAL_HEAD)
        started = time.monotonic()
        while not closed_within(sock, 0.25):
            sock.send(b"a")  # a byte four times a second: never silent
            assert time.monotonic() - started < deadline + 3 * SWEEP_INTERVAL, "still open"
        elapsed = time.monotonic() - started

    assert deadline <= elapsed
    assert dropped.read() == {REQUEST_TIMEOUT: 1}
    # Idle between requests for longer than the deadline, the kept-alive connection still serves.
    kept.request("GET", "/-/healthy")
    assert kept.getresponse().status == 200
    assert kept.sock is kept_socket
    kept.close()


def test_a_client_over_its_cap_is_closed_at_once_while_others_are_served(serve: Serve) -> None:
    dropped = DroppedConnections()
    server = serve(ConnectionLimits(max_per_client=3), dropped=dropped)
    held = [connect(server.port) for _ in range(3)]
    for sock in held:
        sock.sendall(PARTIAL_HEAD)
    try:
        with connect(server.port) as fourth:
            assert closed_within(fourth, AT_ONCE), "the fourth connection must be refused"
        assert status(server.port, CLIENT) == 200
        assert dropped.read() == {PER_CLIENT: 1}

        held.pop().close()
        wait_for(lambda: served(server.port, ATTACKER), timeout=5)
    finally:
        for sock in held:
            sock.close()


def test_a_trusted_proxy_is_not_capped(serve: Serve) -> None:
    limits = ConnectionLimits(max_per_client=2, proxies=parse_networks(f"{ATTACKER}/32"))
    server = serve(limits)
    connections = [
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=5) for _ in range(4)
    ]
    try:
        for connection in connections:
            connection.connect()
        for connection in connections:
            connection.request("GET", "/-/healthy")
            assert connection.getresponse().status == 200
    finally:
        for connection in connections:
            connection.close()


def test_a_disallowed_source_is_closed_at_accept_before_it_sends_a_byte(serve: Serve) -> None:
    dropped = DroppedConnections()
    allowed = parse_networks(f"{CLIENT}/32")
    server = serve(ConnectionLimits(allowed_networks=allowed), dropped=dropped)
    proxy = parse_networks(ATTACKER)
    behind_proxy = serve(ConnectionLimits(allowed_networks=allowed, proxies=proxy))

    with connect(server.port, STRANGER) as sock:
        assert closed_within(sock, AT_ONCE)
    assert dropped.read() == {SOURCE: 1}
    assert status(server.port, CLIENT) == 200
    # From a trusted proxy the app decides, by the client it names.
    assert status(behind_proxy.port, ATTACKER) == 200


@pytest.mark.parametrize("separate", [True, False], ids=["metrics-apart", "metrics-shared"])
def test_the_allow_list_applies_at_accept_only_where_metrics_are_apart(separate: bool) -> None:
    config = Config(
        listen_host="127.0.0.1",
        listen_port=0,
        metrics_address=("127.0.0.1", 0) if separate else None,
        allowed_networks=parse_networks(f"{CLIENT}/32"),
        verify_signature=False,
        state_path=None,
    )
    group, _ = build_server(config, build().recorder)
    thread = threading.Thread(target=group.run, name="test-servers", daemon=True)
    thread.start()
    try:
        main, *metrics = (server.port for server in group.servers)
        with connect(main, STRANGER) as sock:
            assert closed_within(sock, AT_ONCE) is separate
        if separate:
            reply = fetch(f"http://127.0.0.1:{metrics[0]}/metrics")
            dropped = value(
                text_samples(reply.text), "sipgate_web_connections_dropped_total", reason=SOURCE
            )
            assert dropped == 1
        else:
            # Prometheus may scrape from anywhere; the webhook still refuses the stranger.
            assert status(main, STRANGER, "/metrics") == 200
            webhook = http.client.HTTPConnection(
                "127.0.0.1", main, timeout=5, source_address=(STRANGER, 0)
            )
            webhook.request("POST", "/webhook", new_call("A"), {"Content-Type": FORM})
            assert webhook.getresponse().status == 403
            webhook.close()
    finally:
        group.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()


# --- A flood against the exporter process ------------------------------------------------------

FLOOD: Final = 1000
NEW_CALLS: Final = 40


class Trickle:
    """Connections from one address that send a partial request head, then a byte a second.

    A connection the server closes is opened again at the next second, as an attacker would.
    """

    def __init__(self, port: int, count: int) -> None:
        self._port = port
        self._sockets = [self._open() for _ in range(count)]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(
                ("127.0.0.1", self._port), timeout=1, source_address=(ATTACKER, 0)
            )
            sock.sendall(PARTIAL_HEAD)
        except OSError:
            return None
        sock.setblocking(False)
        return sock

    def _run(self) -> None:
        while not self._stopped.wait(1.0):
            for index, sock in enumerate(self._sockets):
                try:
                    if sock is None:
                        raise ConnectionError
                    sock.send(b"a")
                except OSError:
                    if sock is not None:
                        sock.close()
                    self._sockets[index] = self._open()

    def stop(self) -> None:
        """Stop trickling and close every connection."""
        self._stopped.set()
        self._thread.join(timeout=10)
        for sock in self._sockets:
            if sock is not None:
                sock.close()


@pytest.fixture
def many_files(open_files: tuple[int, int]) -> None:
    """Room for the flood's sockets in this process."""
    _, hard = open_files
    wanted = 4 * FLOOD
    soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def timed_new_call(port: int, call_id: str, timeout: float) -> float:
    """Seconds until a newCall from CLIENT is answered 200; infinite if it is not in time."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(CLIENT, 0)
    )
    try:
        connection.request("POST", "/webhook", new_call(call_id), {"Content-Type": FORM})
        response = connection.getresponse()
        response.read()
    except OSError:
        return math.inf
    finally:
        connection.close()
    return time.monotonic() - started if response.status == 200 else math.inf


@pytest.mark.usefixtures("many_files")
def test_a_flood_from_one_address_neither_delays_new_calls_nor_blocks_metrics(
    start: Start,
) -> None:
    metrics_port = free_port()
    program = start(f"--web.metrics-address=127.0.0.1:{metrics_port}")
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    trickle = Trickle(program.port, FLOOD)
    try:
        time.sleep(1.5)  # every connection opened and trickling
        latencies = []
        for number in range(NEW_CALLS):
            latencies.append(timed_new_call(program.port, f"call-{number}", timeout=2.0))
            scraped = time.monotonic()
            assert fetch(metrics, timeout=1.0).status == 200
            assert time.monotonic() - scraped < 1.0
            time.sleep(0.1)
        samples = text_samples(fetch(metrics).text)
    finally:
        trickle.stop()

    p99 = sorted(latencies)[math.ceil(0.99 * len(latencies)) - 1]
    assert p99 < 1.0, f"p99 {p99:.2f}s, slowest {max(latencies):.2f}s"
    refused = value(samples, "sipgate_web_connections_dropped_total", reason=PER_CLIENT)
    assert refused >= FLOOD - ConnectionLimits().max_per_client
    assert value(samples, "sipgate_calls_total", direction="in") == NEW_CALLS
