"""Every change to the exporter's state goes through here: kept by the store, then applied.

The call tracker (the domain) and the webhook request counts (the web layer) are changed only
by the four kinds of entry — an event, a sweep, a refused request, a failed one — each kept by
the store before it takes effect. Replaying the entries after a restart applies them the same
way, so `/metrics` shows every acknowledged event exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from exporter.clock import SteadyClock
from exporter.domain.calls import EndedCall, Handled
from exporter.domain.events import Event, Limits, event_label, parse_event
from exporter.domain.tracker import CallTracker
from exporter.errors import CommitUnknownError, InvalidEventError, StateError
from exporter.storage.health import StoreHealth
from exporter.storage.store import ERROR, EVENT, REJECTION, SWEEP, Entry, State, Store
from exporter.web.requests import WebhookRequests

log = logging.getLogger(__name__)

# Journaled events were accepted once; replay them even if the limits were lowered since.
_REPLAY_LIMITS: Final = Limits(max_fields=1 << 30, max_users=1 << 30)
_FAILED: Final = 500


class Recorder:
    """Applies events, sweeps, refusals and errors to the state, each kept first by `store`."""

    def __init__(
        self,
        tracker: CallTracker,
        requests: WebhookRequests,
        store: Store,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.tracker = tracker
        self.requests = requests
        self.clock = clock or SteadyClock()
        self.restored_until = 0.0
        self._store = store

    @property
    def health(self) -> StoreHealth:
        """Whether the store can write now, and its failed writes."""
        return self._store.health

    def event(self, event: Event, body: bytes, now: float) -> Handled:
        """Keep and apply a valid event received at `now`; raise StateError if it cannot be kept."""
        return self._store.record(Entry(EVENT, now, body), lambda: self._apply(event, now))

    def rejection(self, reason: str, status: int) -> None:
        """Keep and count a request refused before it became an event."""
        entry = Entry(REJECTION, self.clock(), f"{reason} {status}".encode())
        self._store.record(entry, lambda: self.requests.count_rejection(reason, status))

    def error(self, event: str, status: int = _FAILED) -> None:
        """Keep and count a request that failed after it was parsed, answered `status`."""
        entry = Entry(ERROR, self.clock(), f"{event} {status}".encode())
        try:
            self._store.record(entry, lambda: self.requests.count(event, status))
        except CommitUnknownError:
            raise  # maybe counted: the counts are read again from the state
        except StateError:
            # Counted all the same: when the store itself is failing, the errors still show.
            self.requests.count(event, status)
            raise

    def sweep(self, now: float) -> tuple[EndedCall, ...]:
        """End the calls whose grace or expiry ran out; kept only when it ends any."""
        if not self.tracker.sweep_due(now):
            return ()
        try:
            return self._store.record(Entry(SWEEP, now), lambda: self.tracker.sweep(now))
        except StateError:
            return ()  # the store said why; the calls end at the next sweep it can keep

    def restore(self) -> int:
        """Load the saved state and replay the entries after it; return how many.

        Afterwards `restored_until` is the unix time of the latest event or sweep restored.
        """
        saved = self._store.load()
        state = saved.state
        if state is not None:
            self.tracker.restore_state(state)
            # Snapshots from before the web layer kept its own counts have them in "stats".
            self.requests.restore_state(
                state["requests"] if "requests" in state else state["stats"]
            )
        replayed = 0
        latest = 0.0
        for entry in saved.entries:
            self._replay(entry)
            replayed += 1
            latest = max(latest, entry.at)
        self.restored_until = max(latest, self.tracker.stats.last_received)
        return replayed

    def export(self) -> State:
        """The whole state as plain data, for the store."""
        return {**self.tracker.export_state(), "requests": self.requests.export_state()}

    def maintain(self) -> None:
        """Let the store snapshot or tidy up; called about once a second."""
        self._store.maintain(self.export)

    def close(self) -> None:
        """Keep the final state and release the store."""
        self._store.close(self.export)

    def _apply(self, event: Event, now: float) -> Handled:
        handled = self.tracker.handle(event, now)
        self.requests.count(event_label(event), 200)
        return handled

    def _replay(self, entry: Entry) -> None:
        body = entry.body or b""
        if entry.kind == SWEEP:
            self.tracker.sweep(entry.at)
        elif entry.kind == REJECTION:
            reason, status = body.decode().split(" ")
            self.requests.count_rejection(reason, int(status))
        elif entry.kind == ERROR:
            # Entries from before the status was kept hold the event only: those were 500s.
            label, _, status = body.decode().partition(" ")
            self.requests.count(label, int(status or _FAILED))
        elif entry.kind == EVENT:
            try:
                event = parse_event(body, _REPLAY_LIMITS)
            except InvalidEventError as error:
                log.warning("skipped a journaled event that no longer parses: %s", error)
                return
            self._apply(event, entry.at)
