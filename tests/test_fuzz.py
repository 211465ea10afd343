"""Fuzz the webhook with hypothesis: never a 5xx, a one-line reason for every 4xx, the invariant."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.domain.tracker import CallTracker
from exporter.web.server import Server
from tests.http_helpers import (
    CAUSES,
    EVENTS,
    FORM,
    assert_invariant,
    registry_samples,
    total,
)
from tests.in_process import InProcess, build

NOW: Final = 1_800_000_000.0
CALL_IDS: Final = ("A", "B", "C")
KNOWN_NAMES: Final = (
    "event",
    "direction",
    "callId",
    "origCallId",
    "from",
    "to",
    "xcid",
    "user[]",
    "userId[]",
    "fullUserId[]",
    "user",
    "userId",
    "fullUserId",
    "answeringNumber",
    "diversion",
    "cause",
    "dtmf",
)
CONTENT_TYPES: Final = (
    FORM,
    "application/x-www-form-urlencoded",
    'APPLICATION/X-WWW-FORM-URLENCODED; Charset="UTF-8"',
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/json",
    "text/plain; charset=utf-8",
    "multipart/form-data; boundary=xyz",
    "",
    None,
)
BROKEN_ESCAPES: Final = ("%", "%z", "%zz", "%%", "%c3%28", "%ff%fe", "%e2%82", "%0", "%G1")

ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
garbage_text = st.text(max_size=40)


def _value(name: str) -> st.SearchStrategy[str]:
    """Mostly meaningful values for a known field, sometimes anything at all."""
    meaningful: dict[str, st.SearchStrategy[str]] = {
        "event": st.sampled_from((*EVENTS, "newcall", "hangUp", "ping")),
        "direction": st.sampled_from(("in", "out", "IN", "both", "")),
        "callId": st.sampled_from(CALL_IDS),
        "origCallId": st.sampled_from(CALL_IDS),
        "cause": st.sampled_from((*CAUSES, "unknownCause", "")),
        "user[]": st.sampled_from(("Alice", "voicemail", "Jürgen")),
        "user": st.sampled_from(("Alice", "voicemail")),
    }
    return st.one_of(meaningful.get(name, st.just("4921112345")), garbage_text)


huge_value = st.integers(min_value=1_000, max_value=40_000).map(lambda size: "9" * size)


@st.composite
def core_pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """The fields of a valid event, most of the time."""
    if draw(st.integers(0, 5)) == 0:
        return []
    event = draw(st.sampled_from(EVENTS))
    pairs = [("event", event), ("callId", draw(st.sampled_from(CALL_IDS)))]
    pairs += [("direction", draw(st.sampled_from(("in", "out"))))]
    if event == "hangup":
        pairs.append(("cause", draw(_value("cause"))))
    return pairs


@st.composite
def extra_pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Known fields with odd values, unknown fields, repeated and oversized ones."""
    names = draw(st.lists(st.one_of(st.sampled_from(KNOWN_NAMES), garbage_text), max_size=6))
    pairs = [(name, draw(_value(name))) for name in names]
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(st.sampled_from(KNOWN_NAMES)), draw(huge_value)))
    if draw(st.integers(0, 9)) == 0:
        pairs += [("user[]", "Alice")] * draw(st.integers(40, 120))
    return pairs


@st.composite
def encoded_pair(draw: st.DrawFn, pair: tuple[str, str]) -> bytes:
    """One `key=value`, encoded properly, left raw, or with a broken percent escape."""
    key, val = pair
    how = draw(st.sampled_from(("quoted", "quoted", "quoted", "raw", "broken", "no-equals")))
    if how == "raw":
        return f"{key}={val}".encode("utf-8", "surrogatepass")
    if how == "broken":
        return f"{quote(key)}={quote(val)}{draw(st.sampled_from(BROKEN_ESCAPES))}".encode()
    if how == "no-equals":
        return quote(key).encode()
    return f"{quote(key)}={quote(val)}".encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A webhook body: form fields of every kind, or plain garbage bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    core = [f"{quote(key)}={quote(val)}".encode() for key, val in draw(core_pairs())]
    extra = [draw(encoded_pair(pair)) for pair in draw(extra_pairs())]
    return b"&".join(draw(st.permutations(core + extra)))


@dataclass(frozen=True)
class Request:
    """One fuzzed webhook request."""

    body: bytes
    content_type: str | None


requests = st.builds(
    Request,
    bodies(),
    # Mostly the right content type, so that most bodies reach the parser.
    st.one_of(st.just(FORM), st.just(FORM), st.sampled_from(CONTENT_TYPES), ascii_text),
).map(lambda r: r if r.content_type is None else Request(r.body, r.content_type.strip()))


def assert_answer(status: int, content_type: str, body: bytes) -> None:
    """200 with XML, or a 4xx whose body is one line of text saying why."""
    assert status < 500, body
    if status == 200:
        assert content_type.startswith("application/xml"), content_type
        return
    assert 400 <= status < 500, status
    assert content_type.startswith("text/plain"), content_type
    text = body.decode()
    assert text.endswith("\n"), text
    assert text.strip(), "empty reason"
    assert "\n" not in text[:-1], text


def requests_counted(registry: CollectorRegistry) -> float:
    return total(registry_samples(registry), "sipgate_webhook_requests_total")


@dataclass
class Stack:
    """An exporter's parts: the tracker behind the app, and its registry."""

    parts: InProcess

    @property
    def tracker(self) -> CallTracker:
        return self.parts.tracker

    @property
    def registry(self) -> CollectorRegistry:
        return self.parts.registry

    @classmethod
    def new(cls, clock: Callable[[], float] = lambda: NOW) -> Stack:
        return cls(build(clock=clock))

    def check(self, counted_before: float) -> None:
        """Invariant, and the request just made counted exactly once."""
        samples = registry_samples(self.registry)
        assert_invariant(samples)
        assert total(samples, "sipgate_webhook_requests_total") == counted_before + 1


# --- In-process, through WebTest ----------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests, min_size=1, max_size=8))
def test_webhook_in_process_never_fails_and_keeps_the_invariant(batch: list[Request]) -> None:
    stack = Stack.new()
    app = webtest.TestApp(stack.parts.app)
    for request in batch:
        counted = requests_counted(stack.registry)
        test_request = webtest.TestRequest.blank("/webhook", method="POST")
        test_request.body = request.body
        if request.content_type is not None:
            test_request.environ["CONTENT_TYPE"] = request.content_type
        response = app.do_request(test_request, expect_errors=True)
        assert_answer(response.status_int, response.headers["Content-Type"], response.body)
        stack.check(counted)
    # Whatever is left open ends by expiry, and the invariant still holds with nothing active.
    stack.tracker.sweep(NOW + 7200)
    samples = registry_samples(stack.registry)
    assert total(samples, "sipgate_calls_active") == 0
    assert_invariant(samples)


# --- A real waitress server in a thread ---------------------------------------------------------


@dataclass
class Live:
    """A server in this process and the state behind it."""

    port: int
    stack: Stack


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    stack = Stack.new(clock=time.time)
    server = Server(stack.parts.app, "127.0.0.1", 0, threads=2)
    thread = threading.Thread(target=server.run, name="fuzz-server")
    thread.start()
    try:
        yield Live(server.port, stack)
    finally:
        server.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(requests, min_size=1, max_size=4))
def test_webhook_on_a_real_server_never_fails_and_keeps_the_invariant(
    live: Live, batch: list[Request]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        for request in batch:
            counted = requests_counted(live.stack.registry)
            headers = {} if request.content_type is None else {"Content-Type": request.content_type}
            connection.request("POST", "/webhook", request.body, headers)
            response = connection.getresponse()
            body = response.read()
            assert_answer(response.status, response.getheader("Content-Type", ""), body)
            live.stack.check(counted)
    finally:
        connection.close()
