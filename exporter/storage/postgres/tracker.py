"""The call tracker of a replica: calls in progress and callback debts live in PostgreSQL.

Each event locks the rows of its call (and, for an answer or a hangup, its caller's debts),
hands them to a part of the domain tracker (`CallTracker.part`), and writes back what the part
made of them, with the counters it moved, in the entry's transaction. This replica's own
statistics count what it did, once committed; the gauges of calls in progress and callbacks
owed come from the database, exposed by one replica only (the holder of the gauges lock), so
that sums over replicas count each call once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any, Final

import psycopg
from psycopg_pool import PoolTimeout

from exporter.domain.calls import RINGING, EndedCall, Handled
from exporter.domain.events import Event, Hangup, NewCall
from exporter.domain.labels import LabelConfig, Labeler
from exporter.domain.tracker import CallTracker, Reading
from exporter.logs import mask_number
from exporter.storage.postgres import calls, counters, users
from exporter.storage.postgres.store import PostgresStore
from exporter.storage.store import State

log = logging.getLogger(__name__)

_ACTIVE: Final = """
    SELECT direction, state, line, count(*), min(started_at)
    FROM sipgate_exporter.open_calls GROUP BY direction, state, line
"""
# How the call records keep phone numbers (--state.call-records-numbers).
FULL: Final = "full"
MASKED: Final = "masked"
NONE: Final = "none"
NUMBERS: Final = (FULL, MASKED, NONE)
_PENDING: Final = "SELECT line, count(*) FROM sipgate_exporter.callback_debts GROUP BY line"


@dataclasses.dataclass(frozen=True, slots=True)
class Gauges:
    """What is in progress across all replicas, as the gauges expose it."""

    active: Counter[tuple[str, str, str]] = dataclasses.field(default_factory=Counter)
    ringing_since: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    callbacks_pending: Counter[str] = dataclasses.field(default_factory=Counter)


class SharedTracker(CallTracker):
    """A CallTracker whose calls and debts are rows that every replica shares."""

    def __init__(
        self, store: PostgresStore, *args: Any, numbers: str = FULL, **kwargs: Any
    ) -> None:
        """A CallTracker (`args`, `kwargs`) on `store`, keeping callers' and callees' numbers
        in the call records in full, masked or not at all (`numbers`)."""
        super().__init__(*args, **kwargs)
        if numbers not in NUMBERS:
            raise ValueError(f"numbers must be one of {', '.join(NUMBERS)}, not {numbers!r}")
        self._store = store
        self._numbers = numbers
        self._gauges = Gauges()
        store.on_reload(self._reload)

    def handle(self, event: Event, now: float) -> Handled:
        """Apply one event to its call's rows at the database's time (not `now`)."""
        transaction = self._store.current()
        at = self._store.clock.now()
        if _opens_a_call(event) and transaction.first_try and at is not None:
            # Taken as new without asking: if any call has this leg, the write breaks the
            # legs' unique key, and the next try takes it (bench/RESULTS.md, "Replicas on
            # PostgreSQL").
            taken = calls.Taken([], [])
        else:
            leg_ids = [event.call_id]
            if isinstance(event, NewCall) and event.orig_call_id:
                leg_ids.append(event.orig_call_id)
            # newCall opens or joins a call; it neither settles nor opens a debt.
            debts = not isinstance(event, NewCall)
            taken, at = calls.take(transaction, leg_ids, debts)
        part = self.part(taken.calls, taken.debts)
        handled = part.handle(event, at)
        numbers = {}
        if isinstance(event, NewCall):
            numbers[event.call_id] = (self._kept(event.from_number), self._kept(event.to_number))
        cause = event.cause if isinstance(event, Hangup) else None
        self._save(taken, part, handled.ended, at, numbers, cause)
        return handled

    def sweep_due(self, now: float) -> bool:
        """Always: the database knows which calls are due, and `sweep` asks it."""
        return True

    def sweep(self, now: float) -> tuple[EndedCall, ...]:
        """End the due calls and debts no other replica is ending, at the database's time;
        on the replica holding the gauges, also those beyond `max_open` and `max_pending`."""
        transaction = self._store.current()
        at = transaction.now()
        connection = transaction.connection
        due = calls.take_due(connection, at, self.expire_after, self.callbacks.expire_after)
        beyond = calls.Taken([], [])
        if self._store.leader:  # one replica bounds the tables, not each a share of them
            cutoff = at - self.callbacks.expire_after
            bounds = (self.max_open, self.callbacks.max_pending)
            beyond = calls.take_beyond(connection, due, cutoff, *bounds)
        taken = due.joined(beyond)
        if not taken.calls and not taken.debts:
            return ()
        part = self.part(taken.calls, taken.debts)
        ended = part.sweep(at) + part.evict(beyond.call_ids, beyond.debt_keys)
        self._save(taken, part, ended, at, {})
        return ended

    def read(self) -> Reading:
        """This replica's statistics; the gauges if it holds the gauges lock, else zeros."""
        reading = super().read()
        gauges = self._read_gauges() if self._store.leader else Gauges()
        return dataclasses.replace(
            reading,
            active=gauges.active,
            ringing_since=gauges.ringing_since,
            callbacks_pending=gauges.callbacks_pending,
        )

    @property
    def open_calls(self) -> int:
        """Calls in progress on every replica, as last read by the gauges."""
        return sum(self._gauges.active.values())

    def _labeler(self, config: LabelConfig) -> Labeler:
        """A labeler whose users' cap is the replicas' together."""
        labeler = super()._labeler(config)
        labeler.admit = self._admit_user
        return labeler

    def _admit_user(self, name: str) -> bool:
        transaction = self._store.current()
        labels = self.labels
        admission = users.admit(transaction.connection, name, labels.config.max_users)
        if admission is users.Admission.KEPT:
            labels.add_user(name)
        elif admission is users.Admission.ADDED:
            transaction.after_commit(lambda: labels.add_user(name))
        else:
            labels.refuse_user(name)
        return admission is not users.Admission.REFUSED

    def _kept(self, number: str | None) -> str | None:
        """A number as the call records keep it."""
        if self._numbers == NONE or not number:
            return None
        return mask_number(number) if self._numbers == MASKED else number

    def _save(
        self,
        taken: calls.Taken,
        part: CallTracker,
        ended: tuple[EndedCall, ...],
        at: float,
        numbers: dict[str, tuple[str | None, str | None]],
        cause: str | None = None,
    ) -> None:
        transaction = self._store.current()
        state = part.export_state()
        debts = state["callbacks"]["debts"]
        keep_party = self._numbers != NONE
        saved = calls.Saved(state["calls"], debts, ended, at, numbers, cause, keep_party)
        transaction.write(calls.save(taken, saved))
        transaction.count(counters.rows(state["stats"], {}))
        transaction.after_commit(lambda: self._add(part))

    def _add(self, part: CallTracker) -> None:
        with self._lock:
            self.stats.add(part.stats)

    def _reload(self, state: State) -> None:
        with self._lock:
            self.stats.load_dict(state["stats"])

    def _read_gauges(self) -> Gauges:
        try:
            with self._store.connection() as connection:
                gauges = Gauges()
                for direction, state, line, number, oldest in connection.execute(_ACTIVE):
                    gauges.active[(direction, state, line)] += number
                    if state == RINGING:
                        gauges.ringing_since[(direction, line)] = oldest
                for line, number in connection.execute(_PENDING):
                    gauges.callbacks_pending[line] = number
        except (psycopg.Error, PoolTimeout) as error:
            log.debug("gauges not read, the last ones are shown: %s", error)
            return self._gauges
        self._gauges = gauges
        return gauges


def _opens_a_call(event: Event) -> bool:
    """Whether `event` is a call's first newCall: one that names no other leg as its origin,
    as a forward's does."""
    return isinstance(event, NewCall) and event.orig_call_id in (None, "", event.call_id)
