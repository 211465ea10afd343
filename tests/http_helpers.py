"""Helpers shared by the HTTP tests: webhook bodies, metric sums, the invariant and polling."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlencode

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T = TypeVar("T")

FORM: Final = "application/x-www-form-urlencoded; charset=UTF-8"
DIRECTIONS: Final = ("in", "out")
# The public contract of issue 2, written out so that a renamed value fails these tests.
OUTCOMES: Final = (
    "expired",
    "answered",
    "voicemail",
    "missed",
    "busy",
    "rejected",
    "failed",
    "forwarded",
)
STATES: Final = ("ringing", "talking")
CAUSES: Final = (
    "normalClearing",
    "busy",
    "cancel",
    "noAnswer",
    "congestion",
    "notFound",
    "forwarded",
    "other",
)
EVENTS: Final = ("newCall", "answer", "hangup", "dtmf")
ANSWERERS: Final = ("person", "unnamed", "voicemail")
CALLER: Final = "492111234567"
CALLEE: Final = "4915791234567"


def new_call(
    call_id: str,
    direction: str = "in",
    orig: str | None = None,
    users: Iterable[str] = ("Alice",),
    caller: str = CALLER,
    callee: str = CALLEE,
    **extra: str,
) -> str:
    """A newCall body like sipgate sends it, one `user[]` per ringing user."""
    users = list(users)
    fields: list[tuple[str, str]] = [
        ("event", "newCall"),
        ("direction", direction),
        ("from", caller),
        ("to", callee),
        ("callId", call_id),
        ("origCallId", orig or call_id),
        ("xcid", "x" + call_id),
    ]
    fields += [("user[]", user) for user in users]
    fields += [("userId[]", f"w{index}") for index in range(len(users))]
    fields += [("fullUserId[]", f"1234567w{index}") for index in range(len(users))]
    return urlencode(fields + list(extra.items()))


def _leg_event(event: str, call_id: str, direction: str, **fields: str) -> str:
    """A body of an event on a call leg that sipgate has already announced with newCall."""
    leg = {"event": event, "direction": direction, "callId": call_id, "from": CALLER, "to": CALLEE}
    return urlencode(leg | fields | {"answeringNumber": "4921199999"})


def answer(call_id: str, direction: str = "in", user: str = "Alice") -> str:
    """An answer body."""
    return _leg_event("answer", call_id, direction, user=user, userId="w0", fullUserId="1234567w0")


def hangup(call_id: str, cause: str = "normalClearing", direction: str = "in") -> str:
    """A hangup body."""
    return _leg_event("hangup", call_id, direction, cause=cause)


def dtmf(call_id: str, digits: str = "0815") -> str:
    """A dtmf body."""
    return urlencode({"event": "dtmf", "callId": call_id, "dtmf": digits})


def parse_xml(body: bytes) -> ET.Element:
    """The root element of an XML reply from the exporter under test."""
    return ET.fromstring(body)  # noqa: S314 -- our own server's reply, not untrusted input


def registry_samples(registry: CollectorRegistry) -> list[Sample]:
    """Every sample a registry exposes now."""
    return [sample for family in registry.collect() for sample in family.samples]


def text_samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`; fails if none."""
    matching = [
        sample.value
        for sample in samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    assert matching, f"no sample {name}{labels}"
    return sum(matching)


def value(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The value of the sample called `name` with exactly `labels`, summed over lines.

    The `line` label counts only when given: without a configuration file every call is on
    line `other`, and these tests are about calls, not lines.
    """
    matching = [s.value for s in samples if s.name == name and _without_line(s, labels) == labels]
    assert matching, f"expected a sample {name}{labels}, found none"
    return sum(matching)


def _without_line(sample: Sample, wanted: Mapping[str, str]) -> dict[str, str]:
    if "line" in wanted:
        return dict(sample.labels)
    return {key: label for key, label in sample.labels.items() if key != "line"}


def assert_invariant(samples: Iterable[Sample]) -> None:
    """For each direction: calls started minus calls ended equals calls active."""
    samples = list(samples)
    for direction in DIRECTIONS:
        started = total(samples, "sipgate_calls_total", direction=direction)
        ended = total(samples, "sipgate_calls_ended_total", direction=direction)
        active = total(samples, "sipgate_calls_active", direction=direction)
        assert started - ended == active, f"{direction}: {started} - {ended} != {active}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, interval: float = 0.02) -> T:
    """Poll `check` until it returns something other than None or False; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def unread_bytes(local_port: int, remote_port: int) -> int | None:
    """Bytes received by the IPv4 TCP socket local_port<->remote_port that its owner has not read.

    None while no such socket exists. Linux only: it reads the rx_queue of /proc/net/tcp.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if local.endswith(f":{local_port:04X}") and remote.endswith(f":{remote_port:04X}"):
            return int(queues.split(":")[1], 16)
    return None


class Reply:
    """Status, headers and body of one HTTP exchange."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {key.lower(): val for key, val in headers.items()}
        self.body = body

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()


def fetch(
    url: str,
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Reply:
    """GET, or POST when a body is given; HTTP errors come back as a Reply too."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", FORM)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, dict(error.headers), error.read())


def try_fetch(url: str) -> Reply | None:
    """Like `fetch` GET, but None while nothing answers on the port."""
    try:
        return fetch(url, timeout=1.0)
    except OSError:
        return None


def post_webhook(connection: http.client.HTTPConnection, body: str | bytes) -> int:
    """POST `body` to /webhook on a kept-alive connection; the status, the reply read."""
    connection.request("POST", "/webhook", body, {"Content-Type": FORM})
    response = connection.getresponse()
    response.read()
    return response.status
