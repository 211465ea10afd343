"""Relay mode on replicas: the upstream's follow-up URLs kept in PostgreSQL, found by whichever
replica a call's answer, hangup or digits arrive at."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from exporter.config.command_line import parse_config
from exporter.domain.events import Answer, Dtmf, Hangup, NewCall
from exporter.errors import StateError
from exporter.relay.relay import Relay
from exporter.relay.reply import FollowUps
from exporter.relay.upstream import Incoming
from exporter.service import build_relay
from exporter.storage.postgres.follow_ups import SharedFollowUps
from exporter.storage.postgres.store import PostgresStore
from tests.http_helpers import wait_for
from tests.storage.shared_replicas import Replica, Replicas, replicas

__all__ = ["replicas"]

OWN_URL = "https://stats.example.com/webhook"
UPSTREAM = "http://crm.example.com/"
DIAL = (
    b'<Response onAnswer="/answer?call=CALL" onHangup="/hangup?call=CALL">'
    b"<Dial><Number>4915791234567</Number></Dial></Response>"
)
GATHER = b'<Response><Gather onData="/digits?call=CALL" maxDigits="1"/></Response>'


class FakeUpstream:
    """The upstream application: replies to newCall and digits as `reply` says (its `CALL`
    replaced by the request's body), records every request."""

    def __init__(self, reply: bytes = DIAL) -> None:
        self.reply = reply
        self.sent: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def send(self, url: str, body: bytes, headers: Any, timeout: float) -> tuple[int, bytes]:
        with self._lock:
            self.sent.append((url, body))
        if urlsplit(url).path in ("/", "/digits"):  # where sipgate acts on the reply
            return 200, self.reply.replace(b"CALL", body)
        return 200, b""

    def urls(self) -> list[str]:
        with self._lock:
            return [url for url, _ in self.sent]


def relay_of(
    replicas: Replicas, replica: Replica, upstream: FakeUpstream, url: str = UPSTREAM
) -> Relay:
    """The relay `exporter/service.py` builds for `replica`, sending to `upstream` as `url`."""
    config = parse_config(
        [
            f"--state.url={replicas.url}",
            f"--state.replica={replica.name}",
            f"--relay.upstream-url={url}",
        ],
        {},
    )
    relay = build_relay(config, replica.store, upstream.send)
    assert relay is not None
    return relay


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def two(replicas: Replicas, upstream: FakeUpstream) -> Iterator[tuple[Relay, Relay]]:
    relays = (
        relay_of(replicas, replicas.start("a"), upstream),
        relay_of(replicas, replicas.start("b"), upstream),
    )
    for relay in relays:
        relay.start()
    yield relays
    for relay in relays:
        relay.stop()


def test_follow_ups_asked_for_on_one_replica_are_sent_from_another(
    two: tuple[Relay, Relay], upstream: FakeUpstream
) -> None:
    first, second = two
    reply = first.new_call(NewCall("c1", "in"), Incoming(b"c1"), OWN_URL)
    assert reply is not None
    assert b"Dial" in reply

    second.follow_up(Answer("c1", "in"), Incoming(b"answer"))
    first.follow_up(Hangup("c1", "in", "normalClearing"), Incoming(b"hangup"))

    wanted = [UPSTREAM, f"{UPSTREAM}answer?call=c1", f"{UPSTREAM}hangup?call=c1"]
    wait_for(lambda: sorted(upstream.urls()) == sorted(wanted), timeout=10)
    assert second.snapshot().requests[("answer", "ok")] == 1
    assert first.snapshot().requests[("hangup", "ok")] == 1
    # The hangup ended the call's entry, for every replica.
    assert first.remembered_calls == second.remembered_calls == 0
    second.follow_up(Hangup("c1", "in", "normalClearing"), Incoming(b"again"))
    time.sleep(0.2)
    assert len(upstream.sent) == 3


def test_the_upstreams_credentials_are_not_written_to_the_database(
    replicas: Replicas, upstream: FakeUpstream
) -> None:
    url = "http://crm:s3cret@crm.example.com/"
    first = relay_of(replicas, replicas.start("a"), upstream, url)
    second = relay_of(replicas, replicas.start("b"), upstream, url)
    second.start()
    first.new_call(NewCall("c4", "in"), Incoming(b"c4"), OWN_URL)

    with replicas.started[0].store.connection() as connection:
        rows = connection.execute("SELECT * FROM sipgate_exporter.relay_follow_ups").fetchall()
    assert "s3cret" not in repr(rows)
    assert "http://crm.example.com/answer?call=c4" in repr(rows)
    second.follow_up(Answer("c4", "in"), Incoming(b"answer"))
    wait_for(lambda: len(upstream.sent) == 2, timeout=10)
    second.stop()
    assert upstream.urls() == [url, "http://crm:s3cret@crm.example.com/answer?call=c4"]


def test_digits_gathered_on_another_replica_reach_the_gathering_upstream(
    replicas: Replicas,
) -> None:
    upstream = FakeUpstream(GATHER)
    first = relay_of(replicas, replicas.start("a"), upstream)
    second = relay_of(replicas, replicas.start("b"), upstream)
    first.new_call(NewCall("c2", "in"), Incoming(b"c2"), OWN_URL)

    upstream.reply = DIAL  # the IVR's next step dials and asks for the hangup
    reply = second.dtmf(Dtmf("c2", "1"), Incoming(b"c2"), OWN_URL)

    assert reply is not None
    assert b"Dial" in reply
    assert upstream.urls() == [UPSTREAM, f"{UPSTREAM}digits?call=c2"]
    assert first.remembered_calls == 1


def test_follow_ups_expire_and_are_capped_on_the_replica_holding_the_gauges(
    replicas: Replicas, upstream: FakeUpstream
) -> None:
    replica = replicas.start("a")
    replica.sweep()  # takes the gauges, and with them the cap
    assert replica.store.leader
    follow_ups = SharedFollowUps(replica.store, max_calls=2, expire_after=0.5)
    for call_id in ("old", "mid", "new"):
        follow_ups.remember(call_id, FollowUps(on_hangup=f"{UPSTREAM}{call_id}"))
        time.sleep(0.01)

    assert follow_ups.sweep() == 1
    assert [follow_ups.get(call_id) is not None for call_id in ("old", "mid", "new")] == [
        False,
        True,
        True,
    ]
    time.sleep(0.6)
    assert follow_ups.get("new") is None  # past its time even before a sweep
    assert follow_ups.pop("new") is None
    assert follow_ups.sweep() == 1  # "mid": "new" was popped
    assert len(follow_ups) == 0


def test_a_database_that_cannot_be_reached_drops_follow_ups_counted_and_keeps_replies(
    replicas: Replicas, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    replica = replicas.start("a")
    relay = relay_of(replicas, replica, upstream)
    store: PostgresStore = replica.store
    store._pool.close()

    reply = relay.new_call(NewCall("c3", "in"), Incoming(b"c3"), OWN_URL)
    relay.follow_up(Answer("c3", "in"), Incoming(b"answer"))

    assert reply is not None  # sipgate still gets the upstream's reply
    assert b"Dial" in reply
    assert relay.snapshot().requests[("answer", "dropped")] == 1
    assert relay.dtmf(Dtmf("c3", "1"), Incoming(b"c3"), OWN_URL) is None
    assert relay.sweep() == 0
    assert "cannot use relay follow-ups in the state database" in caplog.text
    with pytest.raises(StateError):
        SharedFollowUps(store, 10, 60.0).get("c3")
