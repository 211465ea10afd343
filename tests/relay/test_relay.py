"""Relay mode: XML rewriting, and the exporter in front of real upstream applications."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from prometheus_client.samples import Sample

from exporter.config.command_line import parse_config
from exporter.config.flags import Config
from exporter.domain.events import NewCall
from exporter.domain.tracker import CallTracker
from exporter.errors import ConfigError, InvalidReplyError
from exporter.metrics import create_registry, new_relay_stats, new_requests, new_statistics
from exporter.recorder import Recorder
from exporter.relay.follow_ups import LocalFollowUps
from exporter.relay.relay import EVENTS, OUTCOMES, Relay, RelaySettings
from exporter.relay.reply import FollowUps, parse_reply, rewrite_reply
from exporter.relay.upstream import Incoming
from exporter.service import build_relay, build_server
from exporter.storage.store import MemoryStore
from exporter.web.replies import subscribe_reply
from exporter.web.server import Server
from tests.conftest import FakeClock
from tests.http_helpers import (
    FORM,
    Reply,
    answer,
    assert_invariant,
    dtmf,
    fetch,
    free_port,
    hangup,
    new_call,
    parse_xml,
    registry_samples,
    text_samples,
    total,
    value,
    wait_for,
)
from tests.in_process import build

OWN_URL = "https://stats.example.com/webhook"
SIGNATURE = "c2lnbmVkIGJ5IHNpcGdhdGU+/w=="
SIPGATE_HEADERS = {
    "Content-Type": FORM,
    "User-Agent": "sipgate.io",
    "X-Sipgate-Signature": SIGNATURE,
    "X-Forwarded-For": "203.0.113.9",
}
NOW = 1_800_000_000.0
DEADLINE = 0.5
# Generous bounds for "promptly": far below what a blocked upstream would cost.
PROMPT = 1.5

DIAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<Response onAnswer="ON_ANSWER" onHangup="ON_HANGUP">
  <Dial callerId="492111234567" anonymous="false"><Number>4915791234567</Number></Dial>
</Response>"""


# --- Unit tests of the XML rewriting -----------------------------------------------------------


def test_dial_keeps_its_attributes_and_children_and_follow_ups_point_at_the_exporter() -> None:
    body = DIAL.replace(b"ON_ANSWER", b"https://crm.example.com/a?x=1&amp;y=2").replace(
        b"ON_HANGUP", b"https://crm.example.com/h"
    )

    reply, follow_ups = rewrite_reply(body, OWN_URL)

    root = parse_xml(reply)
    assert root.attrib == {"onAnswer": OWN_URL, "onHangup": OWN_URL}
    dial = root.find("Dial")
    assert dial is not None
    assert dial.attrib == {"callerId": "492111234567", "anonymous": "false"}
    assert [(child.tag, child.text) for child in dial] == [("Number", "4915791234567")]
    assert follow_ups == FollowUps("https://crm.example.com/a?x=1&y=2", "https://crm.example.com/h")


def test_gather_keeps_its_play_and_its_on_data_points_at_the_exporter() -> None:
    body = (
        b'<Response><Gather onData="https://ivr.example.com/digits" maxDigits="3" '
        b'timeout="10000"><Play><Url>https://ivr.example.com/menu.wav</Url></Play></Gather>'
        b"</Response>"
    )

    reply, follow_ups = rewrite_reply(body, OWN_URL)

    root = parse_xml(reply)
    assert root.attrib == {"onAnswer": OWN_URL, "onHangup": OWN_URL}
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib == {"onData": OWN_URL, "maxDigits": "3", "timeout": "10000"}
    assert root.findtext("Gather/Play/Url") == "https://ivr.example.com/menu.wav"
    assert follow_ups == FollowUps(on_data="https://ivr.example.com/digits")


@pytest.mark.parametrize(
    "action",
    [
        b'<Reject reason="busy"/>',
        b"<Hangup/>",
        b"<Play><Url>https://example.com/a.mp3</Url></Play><Dial><Voicemail/></Dial>",
    ],
)
def test_other_actions_pass_unchanged_and_ask_for_no_follow_ups(action: bytes) -> None:
    reply, follow_ups = rewrite_reply(b"<Response>" + action + b"</Response>", OWN_URL)

    root = parse_xml(reply)
    expected = ET.fromstring(b"<Response>" + action + b"</Response>")  # noqa: S314 -- ours
    assert [ET.tostring(child) for child in root] == [ET.tostring(child) for child in expected]
    assert root.attrib == {"onAnswer": OWN_URL, "onHangup": OWN_URL}
    assert not follow_ups


def test_relative_follow_up_urls_are_resolved_against_the_upstream() -> None:
    _, follow_ups = rewrite_reply(
        b'<Response onHangup="/events/hangup"/>', OWN_URL, "http://crm.internal:8080/sipgate"
    )

    assert follow_ups.on_hangup == "http://crm.internal:8080/events/hangup"


def test_the_reply_is_utf8_xml_with_a_declaration() -> None:
    body = "<Response><Play><Url>https://example.com/grüße.mp3</Url></Play></Response>"

    reply, _ = rewrite_reply(body.encode(), OWN_URL)

    assert reply.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Response ')
    assert parse_xml(reply).findtext("Play/Url") == "https://example.com/grüße.mp3"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"OK", "not well-formed"),
        (b"<Response><Dial>", "not well-formed"),
        (b"<html><body>Dial</body></html>", "not <Response>"),
        (b"<Response>&nbsp;</Response>", "not well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<Response>&b;</Response>",
            "DOCTYPE",
        ),
        (b'<!DOCTYPE Response SYSTEM "http://evil.example/x.dtd"><Response/>', "DOCTYPE"),
        (b'<Response onAnswer="ftp://example.com/x"/>', "not absolute http"),
    ],
)
def test_malformed_replies_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidReplyError, match=reason):
        rewrite_reply(body, OWN_URL)


def test_parse_reply_refuses_an_entity_bomb_before_expanding_it() -> None:
    bomb = (
        b'<!DOCTYPE r [<!ENTITY a "'
        + b"a" * 1000
        + b'">'
        + b"".join(
            f'<!ENTITY e{i} "{("&e" + str(i - 1) + ";") * 10 if i else "&a;"}">'.encode()
            for i in range(9)
        )
        + b"]><Response>&e8;</Response>"
    )
    started = time.monotonic()

    with pytest.raises(InvalidReplyError, match="DOCTYPE"):
        parse_reply(bomb)
    assert time.monotonic() - started < PROMPT


def test_forwarded_headers_keep_the_signature_and_extend_x_forwarded_for() -> None:
    environ = {
        "REMOTE_ADDR": "10.0.0.2",
        "HTTP_X_FORWARDED_FOR": "217.116.118.254",
        "HTTP_X_SIPGATE_SIGNATURE": SIGNATURE,
        "HTTP_USER_AGENT": "sipgate.io",
        "HTTP_AUTHORIZATION": "Basic c2VjcmV0OnNlY3JldA==",
        "CONTENT_TYPE": FORM,
    }

    headers = Incoming.from_environ(environ, b"event=newCall").headers()

    assert headers["X-Sipgate-Signature"] == SIGNATURE
    assert headers["X-Forwarded-For"] == "217.116.118.254, 10.0.0.2"
    assert headers["User-Agent"] == "sipgate.io"
    assert headers["Content-Type"] == FORM
    # The exporter's own credentials are not the upstream's business.
    assert "Authorization" not in headers


# --- Relay state, with a fake upstream and clock -----------------------------------------------


def fake_upstream(reply: bytes) -> Callable[..., tuple[int, bytes]]:
    def send(url: str, body: bytes, headers: Any, timeout: float) -> tuple[int, bytes]:
        return 200, reply

    return send


def subscribing_relay(clock: FakeClock, follow_ups: LocalFollowUps | None = None) -> Relay:
    reply = b'<Response onHangup="http://crm.example.com/h"/>'
    upstreams = {"in": "http://crm.example.com/"}
    send = fake_upstream(reply)
    return Relay(RelaySettings(upstreams), new_relay_stats(), clock, send, follow_ups)


def kept(follow_ups: LocalFollowUps, *call_ids: str) -> list[str]:
    return [call_id for call_id in call_ids if follow_ups.get(call_id) is not None]


def test_remembered_calls_are_capped_oldest_first(clock: FakeClock) -> None:
    follow_ups = LocalFollowUps(max_calls=2, expire_after=3600.0, clock=clock)
    relay = subscribing_relay(clock, follow_ups)
    for call_id in ("a", "b", "c"):
        relay.new_call(NewCall(call_id, "in"), Incoming(b""), OWN_URL)

    assert relay.remembered_calls == 2
    assert kept(follow_ups, "a", "b", "c") == ["b", "c"]


def test_remembered_calls_expire_like_calls(clock: FakeClock) -> None:
    follow_ups = LocalFollowUps(max_calls=10, expire_after=60.0, clock=clock)
    relay = subscribing_relay(clock, follow_ups)
    relay.new_call(NewCall("a", "in"), Incoming(b""), OWN_URL)
    clock.advance(30)
    relay.new_call(NewCall("b", "in"), Incoming(b""), OWN_URL)

    assert relay.sweep() == 0
    clock.advance(31)
    assert relay.sweep() == 1
    assert kept(follow_ups, "a", "b") == ["b"]


def test_the_relay_settings_bound_the_follow_ups_kept_in_memory(clock: FakeClock) -> None:
    reply = b'<Response onHangup="http://crm.example.com/h"/>'
    settings = RelaySettings({"in": "http://crm.example.com/"}, max_calls=2, expire_after=60.0)
    relay = Relay(settings, new_relay_stats(), clock, fake_upstream(reply))
    for call_id in ("a", "b", "c"):
        relay.new_call(NewCall(call_id, "in"), Incoming(b""), OWN_URL)
    assert relay.remembered_calls == 2
    clock.advance(61)
    assert relay.sweep() == 2


def test_an_unexpected_failure_still_gives_sipgate_a_reply(clock: FakeClock) -> None:
    def send(url: str, body: bytes, headers: Any, timeout: float) -> tuple[int, bytes]:
        raise RuntimeError("a bug somewhere below")

    relay = Relay(RelaySettings({"in": "http://crm/"}), new_relay_stats(), clock, send)

    assert relay.new_call(NewCall("x", "in"), Incoming(b""), OWN_URL) is None
    assert relay.snapshot().requests == {("newCall", "error"): 1}


def test_every_relay_series_exists_at_zero_and_only_with_a_relay(tracker: CallTracker) -> None:
    relay = subscribing_relay(FakeClock())
    samples = registry_samples(
        create_registry(tracker, new_requests(), process_metrics=False, relay=relay)
    )
    for event in EVENTS:
        for outcome in OUTCOMES:
            assert value(samples, "sipgate_relay_requests_total", event=event, outcome=outcome) == 0
        count = "sipgate_relay_request_duration_seconds_count"
        assert value(samples, count, event=event) == 0

    plain = registry_samples(create_registry(tracker, new_requests(), process_metrics=False))
    assert not [sample for sample in plain if sample.name.startswith("sipgate_relay_")]


# --- Configuration ----------------------------------------------------------------------------


def test_relay_flags_and_their_defaults() -> None:
    assert build_relay(Config()) is None
    config = parse_config(
        [
            "--relay.upstream-url=https://crm.example.com/sipgate",
            "--relay.upstream-url-out=https://dialer.example.com/out",
            "--relay.timeout=1500ms",
        ],
        {"SIPGATE_EXPORTER_RELAY_RETRIES": "5"},
    )

    relay = build_relay(config)

    assert relay is not None
    assert relay.settings.upstreams == {
        "in": "https://crm.example.com/sipgate",
        "out": "https://dialer.example.com/out",
    }
    assert (relay.settings.timeout, relay.settings.retries) == (1.5, 5)
    assert (Config().relay_timeout, Config().relay_retries) == (2.0, 3)


def test_one_direction_alone_relays_only_that_direction() -> None:
    config = parse_config(["--relay.upstream-url-in=http://crm:8080/in"], {})
    relay = build_relay(config)
    assert relay is not None
    assert relay.settings.upstreams == {"in": "http://crm:8080/in"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--relay.upstream-url=crm.example.com"], "--relay.upstream-url: invalid upstream URL"),
        (["--relay.upstream-url-in=ftp://x/"], "--relay.upstream-url-in: invalid upstream URL"),
        (["--relay.timeout=0s"], "--relay.timeout: invalid timeout"),
        (["--relay.timeout=30s"], "--relay.timeout: invalid timeout"),
        (["--relay.retries=-1"], "--relay.retries: invalid number"),
        (["--relay.retries=11"], "--relay.retries: invalid number"),
    ],
)
def test_bad_relay_values_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(argv, {})


def test_a_bad_upstream_url_is_not_echoed_since_it_may_hold_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(["--relay.upstream-url=user:s3cret@crm"], {})
    assert "s3cret" not in str(caught.value)


# --- Real upstream applications ----------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request an upstream application received."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> str:
        return parse_qs(self.body.decode())["event"][0]

    @property
    def call_id(self) -> str:
        return parse_qs(self.body.decode())["callId"][0]


Route = Callable[[Received], tuple[int, bytes]]


@dataclass
class Upstream:
    """A real HTTP application on a free port: replies by path, records every request."""

    routes: dict[str, Route]
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.received if request.path == path]

    def events(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(request.event, request.call_id) for request in self.received]

    def blocked(self, request: Received) -> tuple[int, bytes]:
        """A route that answers only once the test sets `release`."""
        self.release.wait(10)
        return 200, b""


@pytest.fixture
def upstream() -> Iterator[Callable[[dict[str, Route]], Upstream]]:
    started: list[Upstream] = []

    def start(routes: dict[str, Route]) -> Upstream:
        app = Upstream(routes)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                with app.lock:
                    app.received.append(request)
                route = app.routes.get(self.path.partition("?")[0])
                status, body = route(request) if route else (404, b"")
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        app.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        app.server.daemon_threads = True
        threading.Thread(
            target=app.server.serve_forever, args=(0.05,), name="upstream", daemon=True
        ).start()
        started.append(app)
        return app

    yield start
    for app in started:
        app.release.set()
        assert app.server is not None
        app.server.shutdown()
        app.server.server_close()


@dataclass
class Exporter:
    """The exporter on a real waitress server, in relay mode or not."""

    port: int
    relay: Relay | None

    def post(self, body: str) -> Reply:
        reply = fetch(f"http://127.0.0.1:{self.port}/webhook", body, SIPGATE_HEADERS)
        assert reply.status == 200, reply.text
        return reply

    def samples(self) -> list[Sample]:
        return text_samples(fetch(f"http://127.0.0.1:{self.port}/metrics").text)

    def relayed(self, event: str, outcome: str) -> float:
        samples = self.samples()
        return value(samples, "sipgate_relay_requests_total", event=event, outcome=outcome)

    def wait_relayed(self, event: str, outcome: str, count: int = 1) -> None:
        wait_for(lambda: self.relayed(event, outcome) >= count, timeout=10)
        assert self.relayed(event, outcome) == count


@pytest.fixture
def exporter() -> Iterator[Callable[..., Exporter]]:
    stops: list[Callable[[], None]] = []

    def start(upstream_url: str | None = None, **settings: Any) -> Exporter:
        tracker = CallTracker(new_statistics(), forward_grace=60.0, expire_after=3600.0)
        relay = None
        if upstream_url is not None:
            options = {"timeout": DEADLINE, "retries": 2, "backoff": 0.01, "workers": 1}
            upstreams = settings.pop("upstreams", {"in": upstream_url, "out": upstream_url})
            relay = Relay(RelaySettings(upstreams, **(options | settings)), new_relay_stats())
            relay.start()
            stops.append(relay.stop)
        app = build(tracker, public_url=OWN_URL, clock=lambda: NOW, relay=relay).app
        server = Server(app, "127.0.0.1", 0, threads=4)
        thread = threading.Thread(target=server.run, name="exporter")
        thread.start()

        def stop_server() -> None:
            server.stop_soon()  # stop() can race with the loop closing its trigger
            thread.join(10)

        stops.append(stop_server)
        return Exporter(server.port, relay)

    yield start
    for stop in reversed(stops):
        stop()


def dial_app(app_path: str = "/") -> dict[str, Route]:
    """An upstream that dials out and asks for answer and hangup, per call, at its own paths."""

    def new_call_route(request: Received) -> tuple[int, bytes]:
        reply = DIAL.replace(b"ON_ANSWER", f"/answer?call={request.call_id}".encode())
        return 200, reply.replace(b"ON_HANGUP", f"/hangup?call={request.call_id}".encode())

    ok: Route = lambda request: (200, b"")  # noqa: E731
    return {app_path: new_call_route, "/answer": ok, "/hangup": ok}


def own_reply() -> bytes:
    return subscribe_reply(OWN_URL)


def test_dial_upstream_gets_the_same_request_and_sipgate_gets_its_dial(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream(dial_app())
    live = exporter(app.url + "/")
    body = new_call("c1")

    reply = live.post(body)

    assert reply.headers["content-type"].startswith("application/xml")
    root = parse_xml(reply.body)
    assert root.attrib == {"onAnswer": OWN_URL, "onHangup": OWN_URL}
    assert root.findtext("Dial/Number") == "4915791234567"
    (received,) = app.at("/")
    assert received.body == body.encode()
    assert received.headers["X-Sipgate-Signature"] == SIGNATURE
    assert received.headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert received.headers["Content-Type"] == FORM
    assert received.headers["User-Agent"] == "sipgate.io"
    assert live.relayed("newCall", "ok") == 1


def test_follow_ups_reach_the_urls_the_upstream_asked_for_per_leg(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream(dial_app())
    live = exporter(app.url + "/")
    # A forward: the second leg's newCall is itself relayed and gets its own follow-up URLs.
    bodies = [
        new_call("A"),
        hangup("A", cause="forwarded"),
        new_call("B", orig="A"),
        answer("B"),
        hangup("B"),
    ]
    replies = [live.post(body).body for body in bodies]

    for index in (0, 2):
        assert parse_xml(replies[index]).findtext("Dial/Number") == "4915791234567"

    live.wait_relayed("hangup", "ok", 2)
    live.wait_relayed("answer", "ok", 1)
    # Follow-ups travel in the background: in order per leg, not with the next leg's newCall.
    paths = {request.body.decode(): request.path for request in app.received}
    assert paths == {
        bodies[0]: "/",
        bodies[1]: "/hangup?call=A",
        bodies[2]: "/",
        bodies[3]: "/answer?call=B",
        bodies[4]: "/hangup?call=B",
    }
    leg_b = [event for event, call_id in app.events() if call_id == "B"]
    assert leg_b == ["newCall", "answer", "hangup"]
    assert all(r.headers["X-Sipgate-Signature"] == SIGNATURE for r in app.received)
    assert live.relay is not None
    assert live.relay.remembered_calls == 0  # every leg's entry ended with its hangup


def test_gather_upstream_answers_the_dtmf_itself_and_gets_no_answer_or_hangup(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    gather = b'<Response><Gather onData="/digits" maxDigits="1"><Play><Url>x</Url></Play></Gather></Response>'  # noqa: E501
    menu_choice = b"<Response><Dial><Number>4921100</Number></Dial></Response>"
    app = upstream({"/": lambda request: (200, gather), "/digits": lambda r: (200, menu_choice)})
    live = exporter(app.url + "/")

    reply = live.post(new_call("G"))
    live.post(answer("G"))
    digits_reply = live.post(dtmf("G", "07"))
    live.post(hangup("G"))

    root = parse_xml(reply.body)
    assert root.attrib == {"onAnswer": OWN_URL, "onHangup": OWN_URL}
    gather_element = root.find("Gather")
    assert gather_element is not None
    assert gather_element.attrib == {"onData": OWN_URL, "maxDigits": "1"}
    # sipgate acts on the reply to onData: the upstream's next action reaches it at once.
    assert parse_xml(digits_reply.body).findtext("Dial/Number") == "4921100"
    assert live.relayed("dtmf", "ok") == 1
    assert app.events() == [("newCall", "G"), ("dtmf", "G")]
    assert app.at("/digits")[0].body == dtmf("G", "07").encode()
    samples = live.samples()
    for event in ("answer", "hangup"):
        relayed = [s for s in samples if s.name == "sipgate_relay_requests_total"]
        assert sum(s.value for s in relayed if s.labels["event"] == event) == 0


def test_an_upstream_without_follow_ups_gets_none_but_the_exporter_still_counts_them(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream({"/": lambda request: (200, b'<Response><Reject reason="busy"/></Response>')})
    live = exporter(app.url + "/")

    reply = live.post(new_call("R"))
    live.post(hangup("R", cause="busy"))

    root = parse_xml(reply.body)
    assert root.attrib == {"onAnswer": OWN_URL, "onHangup": OWN_URL}
    assert [child.attrib for child in root] == [{"reason": "busy"}]
    assert app.events() == [("newCall", "R")]
    samples = live.samples()
    assert total(samples, "sipgate_calls_ended_total", direction="in", outcome="busy") == 1


def test_a_slow_upstream_gets_a_deadline_and_sipgate_the_exporters_reply(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream({})
    app.routes["/"] = app.blocked
    live = exporter(app.url + "/")

    started = time.monotonic()
    reply = live.post(new_call("S"))
    elapsed = time.monotonic() - started

    assert reply.body == own_reply()
    assert DEADLINE <= elapsed < DEADLINE + PROMPT
    assert live.relayed("newCall", "timeout") == 1
    samples = live.samples()
    assert value(samples, "sipgate_relay_request_duration_seconds_count", event="newCall") == 1
    assert total(samples, "sipgate_calls_total", direction="in") == 1


def test_a_slow_answer_endpoint_does_not_delay_the_reply_to_sipgate(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream(dial_app())
    app.routes["/answer"] = app.blocked
    live = exporter(app.url + "/", timeout=10.0)
    live.post(new_call("D"))

    started = time.monotonic()
    reply = live.post(answer("D"))
    elapsed = time.monotonic() - started

    assert reply.body == b'<?xml version="1.0" encoding="UTF-8"?>\n<Response/>\n'
    assert elapsed < DEADLINE
    wait_for(lambda: len(app.at("/answer?call=D")) == 1, timeout=10)  # in flight, unanswered
    assert live.relayed("answer", "ok") == 0
    app.release.set()
    live.wait_relayed("answer", "ok")


@pytest.mark.parametrize("failure", ["status 500", "connection refused"])
def test_a_failing_upstream_is_counted_and_sipgate_gets_the_exporters_reply(
    upstream: Callable[[dict[str, Route]], Upstream],
    exporter: Callable[..., Exporter],
    failure: str,
) -> None:
    if failure == "status 500":
        url = upstream({"/": lambda request: (500, b"<Response><Hangup/></Response>")}).url + "/"
    else:
        url = f"http://127.0.0.1:{free_port()}/"
    live = exporter(url)

    reply = live.post(new_call("F"))

    assert reply.body == own_reply()
    assert live.relayed("newCall", "error") == 1
    assert live.relayed("newCall", "ok") == 0


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        # Malformed XML is not passed on.
        (200, b"<Response><Dial>", "invalid_reply"),
        (200, b"<html><body>500</body></html>", "invalid_reply"),
        (200, b'<!DOCTYPE Response [<!ENTITY x "y">]><Response>&x;</Response>', "invalid_reply"),
        (200, b"Internal error", "invalid_reply"),
        # An empty reply means no actions and is no failure.
        (204, b"", "ok"),
    ],
    ids=["truncated", "wrong root", "doctype", "not xml", "empty"],
)
def test_an_upstream_reply_with_nothing_to_pass_on_gets_sipgate_the_exporters_reply(
    upstream: Callable[[dict[str, Route]], Upstream],
    exporter: Callable[..., Exporter],
    status: int,
    body: bytes,
    outcome: str,
) -> None:
    live = exporter(upstream({"/": lambda request: (status, body)}).url + "/")

    reply = live.post(new_call("M"))

    assert reply.body == own_reply()
    assert live.relayed("newCall", outcome) == 1


def test_retries_of_a_failing_follow_up_endpoint_are_bounded(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream(dial_app())
    app.routes["/hangup"] = lambda request: (503, b"")
    live = exporter(app.url + "/", retries=2)
    live.post(new_call("H"))

    live.post(hangup("H"))

    live.wait_relayed("hangup", "error")
    assert len(app.at("/hangup?call=H")) == 3  # the first try and two retries
    assert live.relayed("hangup", "retried") == 2
    assert live.relayed("hangup", "ok") == 0


def test_a_full_queue_drops_and_counts_follow_ups(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    everything = b'<Response onAnswer="/slow" onHangup="/slow"><Gather onData="/slow"/></Response>'
    app = upstream({"/": lambda request: (200, everything)})
    app.routes["/slow"] = app.blocked
    live = exporter(app.url + "/", queue_size=1, timeout=10.0)
    live.post(new_call("Q"))
    live.post(new_call("R"))

    live.post(answer("Q"))
    wait_for(lambda: len(app.at("/slow")) == 1, timeout=10)  # the worker holds Q's answer
    live.post(answer("R"))  # waits in the queue
    live.post(hangup("Q"))  # finds the queue full

    assert live.relayed("hangup", "dropped") == 1
    app.release.set()
    wait_for(lambda: live.relayed("answer", "ok") == 2 or None, timeout=10)
    assert [request.event for request in app.at("/slow")] == ["answer", "answer"]


def test_an_unconfigured_direction_is_not_relayed(
    upstream: Callable[[dict[str, Route]], Upstream], exporter: Callable[..., Exporter]
) -> None:
    app = upstream(dial_app())
    live = exporter(app.url + "/", upstreams={"in": app.url + "/"})

    reply = live.post(new_call("O", direction="out"))

    assert reply.body == own_reply()
    assert app.received == []
    assert live.relayed("newCall", "ok") == 0


def call_traffic() -> list[str]:
    """Calls of every kind, in both directions, with a forward, a voicemail and digits."""
    return [
        new_call("1"),
        answer("1"),
        dtmf("1"),
        hangup("1"),
        new_call("2"),
        hangup("2", cause="forwarded"),
        new_call("3", orig="2", users=["voicemail"]),
        answer("3", user="voicemail"),
        hangup("3"),
        new_call("4", direction="out"),
        hangup("4", cause="busy", direction="out"),
        new_call("5"),
        hangup("5", cause="cancel"),
        new_call("6"),  # still ringing
        answer("unknown"),
    ]


def call_statistics(samples: list[Sample]) -> list[Sample]:
    skip = ("sipgate_relay_", "sipgate_webhook_request_duration_seconds")
    return sorted(
        (s for s in samples if s.name.startswith("sipgate_") and not s.name.startswith(skip)),
        key=lambda sample: (sample.name, sorted(sample.labels.items())),
    )


@pytest.mark.parametrize("kind", ["dial", "failing", "slow"])
def test_statistics_are_identical_to_a_run_without_relay(
    upstream: Callable[[dict[str, Route]], Upstream],
    exporter: Callable[..., Exporter],
    kind: str,
) -> None:
    app = upstream(dial_app())
    if kind == "failing":
        app.routes = {"/": lambda request: (500, b""), "/answer": lambda request: (500, b"")}
    elif kind == "slow":
        app.routes["/"] = app.blocked
    plain = exporter()
    relayed = exporter(app.url + "/", timeout=0.05) if kind == "slow" else exporter(app.url + "/")

    for body in call_traffic():
        plain.post(body)
        relayed.post(body)

    expected = call_statistics(plain.samples())
    assert total(expected, "sipgate_calls_total", direction="in") == 4
    assert call_statistics(relayed.samples()) == expected
    assert_invariant(relayed.samples())


def test_the_program_wires_relay_mode_from_its_flags(
    upstream: Callable[[dict[str, Route]], Upstream],
) -> None:
    app = upstream(dial_app())
    config = Config(
        listen_host="127.0.0.1",
        listen_port=0,
        public_url=OWN_URL,
        verify_signature=False,
        state_path=None,
        relay_upstream_url=app.url + "/",
    )
    tracker = CallTracker(new_statistics(), config.forward_grace, config.expire_after)
    recorder = Recorder(tracker, new_requests(), MemoryStore())
    relay = build_relay(config)
    assert relay is not None
    server, _ = build_server(config, recorder, relay=relay)
    relay.start()
    thread = threading.Thread(target=server.run, name="program")
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.servers[0].port}"
        reply = fetch(base + "/webhook", new_call("W"), SIPGATE_HEADERS)
        fetch(base + "/webhook", hangup("W"), SIPGATE_HEADERS)
        assert parse_xml(reply.body).findtext("Dial/Number") == "4915791234567"
        wait_for(lambda: len(app.at("/hangup?call=W")) == 1, timeout=10)
        samples = text_samples(fetch(base + "/metrics").text)
        assert value(samples, "sipgate_relay_requests_total", event="newCall", outcome="ok") == 1
    finally:
        server.stop_soon()
        thread.join(10)
        relay.stop()
