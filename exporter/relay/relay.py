"""Relay mode: forward sipgate events to an upstream application and keep its follow-up URLs.

sipgate accepts one webhook URL per direction. In relay mode the exporter owns that URL, counts
every event as always, passes `newCall` on to the upstream within a deadline and hands the
upstream's XML reply to sipgate, with `onAnswer`, `onHangup` and `onData` pointing back at the
exporter. The follow-up events are then passed on in the background to the URLs the upstream
asked for, so that they never delay the reply to sipgate.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from exporter.domain.events import (
    ANSWER,
    DTMF,
    EVENT_NAMES,
    HANGUP,
    NEW_CALL,
    Answer,
    Dtmf,
    Event,
    Hangup,
    NewCall,
)
from exporter.domain.statistics import Histogram
from exporter.errors import InvalidReplyError, StateError, UpstreamError
from exporter.relay.follow_ups import FollowUpMemory, LocalFollowUps
from exporter.relay.reply import FollowUps, rewrite_reply
from exporter.relay.upstream import ERROR, MAX_REPLY_BYTES, TIMEOUT, Incoming, Post, post

log = logging.getLogger(__name__)

OK: Final = "ok"
INVALID_REPLY: Final = "invalid_reply"
DROPPED: Final = "dropped"
RETRIED: Final = "retried"
OUTCOMES: Final = (OK, ERROR, TIMEOUT, INVALID_REPLY, DROPPED, RETRIED)
EVENTS: Final = EVENT_NAMES


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Where and how to relay; `upstreams` maps a direction (`in`, `out`) to a URL."""

    upstreams: Mapping[str, str]
    timeout: float = 2.0
    retries: int = 3
    backoff: float = 0.5
    max_calls: int = 100_000
    expire_after: float = 4 * 3600.0
    queue_size: int = 1000
    workers: int = 4


@dataclass
class RelayStats:
    """Relay counters by (event, outcome) and request durations by event."""

    buckets: tuple[float, ...]
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    durations: dict[str, Histogram] = field(default_factory=dict)

    def observe(self, event: str, seconds: float) -> None:
        """Record how long one upstream request took."""
        histogram = self.durations.get(event)
        if histogram is None:
            histogram = self.durations[event] = Histogram(self.buckets)
        histogram.observe(seconds)

    def copy(self) -> RelayStats:
        """An independent copy."""
        durations = {event: histogram.copy() for event, histogram in self.durations.items()}
        return RelayStats(self.buckets, self.requests.copy(), durations)


@dataclass(frozen=True, slots=True)
class _Job:
    event: str
    url: str
    incoming: Incoming


class Relay:
    """Pass events on to the upstream; thread-safe; `start()` the workers for follow-ups."""

    def __init__(
        self,
        settings: RelaySettings,
        stats: RelayStats,
        clock: Callable[[], float] = time.monotonic,
        send: Post = post,
        follow_ups: FollowUpMemory | None = None,
    ) -> None:
        """A relay keeping follow-ups in `follow_ups`, in this process's memory by default."""
        self.settings = settings
        self._stats = stats
        self._clock = clock
        self._send = send
        self._lock = threading.Lock()
        if follow_ups is None:
            follow_ups = LocalFollowUps(settings.max_calls, settings.expire_after, clock)
        self._follow_ups = follow_ups
        # One queue per worker and each call always on the same one: a call's events stay in order.
        size = max(1, settings.queue_size // settings.workers)
        self._queues = [queue.Queue[_Job | None](size) for _ in range(settings.workers)]
        self._threads = [
            threading.Thread(target=self._work, args=(jobs,), name=f"relay-{index}", daemon=True)
            for index, jobs in enumerate(self._queues)
        ]
        self._stopping = threading.Event()
        self._warned: set[str] = set()

    def new_call(self, event: NewCall, incoming: Incoming, own_url: str) -> bytes | None:
        """The upstream's reply for sipgate, re-subscribed to `own_url`; None to use our own."""
        url = self.settings.upstreams.get(event.direction)
        if url is None:
            return None
        reply, follow_ups = self._ask(NEW_CALL, url, incoming, own_url)
        if follow_ups:
            self._remember(NEW_CALL, event.call_id, follow_ups)
        return reply

    def dtmf(self, event: Dtmf, incoming: Incoming, own_url: str) -> bytes | None:
        """The upstream's next actions after the digits it gathered; None to use our own reply.

        Like newCall and unlike answer and hangup, sipgate acts on the reply to `onData` (an
        IVR answers a key press with <Dial> or another <Gather>), so it is relayed at once.
        """
        try:
            before = self._follow_ups.get(event.call_id)
        except StateError as error:
            self._state_failed(DTMF, error)
            return None
        if before is None or before.on_data is None:
            return None
        reply, follow_ups = self._ask(DTMF, before.on_data, incoming, own_url)
        if reply is not None:
            self._remember(
                DTMF,
                event.call_id,
                FollowUps(
                    on_answer=follow_ups.on_answer or before.on_answer,
                    on_hangup=follow_ups.on_hangup or before.on_hangup,
                    on_data=follow_ups.on_data,
                ),
            )
        return reply

    def _ask(
        self, label: str, url: str, incoming: Incoming, own_url: str
    ) -> tuple[bytes | None, FollowUps]:
        """Send one event within the deadline; the rewritten reply (None on failure) and
        the follow-ups it asks for."""
        started = self._clock()
        outcome, reply, follow_ups = OK, None, FollowUps()
        try:
            status, body = self._send(url, incoming.body, incoming.headers(), self.settings.timeout)
            if not 200 <= status < 300:
                raise UpstreamError(ERROR, f"HTTP status {status}")
            if len(body) > MAX_REPLY_BYTES:
                raise InvalidReplyError(f"reply larger than {MAX_REPLY_BYTES} bytes")
            # An empty 2xx reply means "no actions, no follow-ups", for sipgate as for us.
            if body.strip():
                reply, follow_ups = rewrite_reply(body, own_url, url)
        except UpstreamError as error:
            outcome = error.outcome
            self._warn(label, outcome, url, str(error))
        except InvalidReplyError as error:
            outcome = INVALID_REPLY
            self._warn(label, outcome, url, str(error))
        except Exception:
            # Whatever the upstream did, sipgate gets a reply that routes the call.
            log.exception("relaying %s to upstream %s failed", label, urlsplit(url).hostname)
            outcome = ERROR
        self._count(label, outcome, self._clock() - started)
        return reply, follow_ups

    def follow_up(self, event: Event, incoming: Incoming) -> None:
        """Queue answer or hangup for the URL the upstream asked for; never blocks."""
        if not isinstance(event, Answer | Hangup):
            return
        label = _label(event)
        # A leg's hangup is its last event: its entry ends here.
        find = self._follow_ups.pop if isinstance(event, Hangup) else self._follow_ups.get
        try:
            kept = find(event.call_id)
        except StateError as error:
            self._count(label, DROPPED)
            self._state_failed(label, error)
            return
        url = kept.url_for(event) if kept is not None else None
        if url is None:
            return
        jobs = self._queues[hash(event.call_id) % len(self._queues)]
        try:
            jobs.put_nowait(_Job(label, url, incoming))
        except queue.Full:
            self._count(label, DROPPED)
            self._warn(label, DROPPED, url, "the relay queue is full")

    def sweep(self) -> int:
        """Forget the follow-ups of calls that saw no hangup in time; return how many."""
        try:
            return self._follow_ups.sweep()
        except StateError as error:
            log.debug("relay follow-ups not swept: %s", error)  # the store logs the outage
            return 0

    def snapshot(self) -> RelayStats:
        """A consistent copy of the relay's counters."""
        with self._lock:
            return self._stats.copy()

    @property
    def remembered_calls(self) -> int:
        """Number of calls whose follow-up URLs are kept."""
        return len(self._follow_ups)

    def start(self) -> None:
        """Start the workers that relay follow-up events."""
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Let the workers finish their current event and stop; events still queued are lost."""
        self._stopping.set()
        for jobs in self._queues:
            # A full queue's worker sees _stopping after its current event instead.
            with contextlib.suppress(queue.Full):
                jobs.put_nowait(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _remember(self, label: str, call_id: str, follow_ups: FollowUps) -> None:
        try:
            self._follow_ups.remember(call_id, follow_ups)
        except StateError as error:
            # sipgate gets the upstream's reply all the same; the follow-ups reach only us.
            self._state_failed(label, error)

    def _work(self, jobs: queue.Queue[_Job | None]) -> None:
        while not self._stopping.is_set():
            job = jobs.get()
            if job is None:
                return
            try:
                self._deliver(job)
            except Exception:  # a worker must survive anything one event does
                log.exception("relaying a %s event failed", job.event)

    def _deliver(self, job: _Job) -> None:
        attempt = 0
        while True:
            started = self._clock()
            try:
                status, _ = self._send(
                    job.url, job.incoming.body, job.incoming.headers(), self.settings.timeout
                )
                if not 200 <= status < 300:
                    raise UpstreamError(ERROR, f"HTTP status {status}")
            except UpstreamError as error:
                elapsed = self._clock() - started
                if attempt >= self.settings.retries or self._stopping.is_set():
                    self._count(job.event, error.outcome, elapsed)
                    self._warn(job.event, error.outcome, job.url, str(error))
                    return
                self._count(job.event, RETRIED, elapsed)
                if self._stopping.wait(self.settings.backoff * 2**attempt):
                    self._count(job.event, error.outcome)
                    return
                attempt += 1
                continue
            self._count(job.event, OK, self._clock() - started)
            return

    def _count(self, event: str, outcome: str, seconds: float | None = None) -> None:
        with self._lock:
            self._stats.requests[(event, outcome)] += 1
            if seconds is not None:
                self._stats.observe(event, seconds)

    def _warn(self, event: str, outcome: str, url: str, message: str) -> None:
        # The host only, since the URL may carry credentials.
        host = urlsplit(url).hostname or "?"
        message = f"relaying {event} to upstream {host} failed ({outcome}): {message}"
        self._warn_once(f"{event}/{outcome}", message)

    def _state_failed(self, event: str, error: StateError) -> None:
        self._warn_once(f"{event}/state", f"{event} not relayed in full: {error}")

    def _warn_once(self, kind: str, message: str) -> None:
        # At warning the first time, so that a failing upstream cannot flood the log.
        with self._lock:
            first = kind not in self._warned
            self._warned.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, "%s", message)


def _label(event: Answer | Hangup) -> str:
    return ANSWER if isinstance(event, Answer) else HANGUP
