"""Follow calls through their legs and count them: the exporter's state machine."""

from __future__ import annotations

import sys
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any

from exporter.domain.callbacks import (
    CALLED_AGAIN,
    CALLED_BACK,
    DROPPED,
    OWED_OUTCOMES,
    Callbacks,
    ClosedDebt,
)
from exporter.domain.calls import (
    ANSWERED,
    EXPIRED,
    MATCHED,
    PERSON,
    RINGING,
    UNMATCHED,
    UNNAMED,
    VOICEMAIL,
    Call,
    EndedCall,
    Handled,
    Leg,
)
from exporter.domain.events import (
    ANSWER,
    DTMF,
    FORWARDED,
    HANGUP,
    NEW_CALL,
    NORMAL_CLEARING,
    OUT,
    Answer,
    Dtmf,
    Event,
    Hangup,
    NewCall,
)
from exporter.domain.labels import LabelConfig, Labeler, LabelValues
from exporter.domain.records import call_record, restore_call
from exporter.domain.ringing import RingingCalls
from exporter.domain.service_level import ServiceTargets, TargetsByLine, count_service_level
from exporter.domain.statistics import Statistics

ActiveCalls = Counter[tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class Reading:
    """Consistent copies of everything the tracker counts, taken at one moment."""

    stats: Statistics
    active: ActiveCalls  # calls in progress by (direction, state, line)
    labels: LabelValues  # the label values in use
    ringing_since: dict[tuple[str, str], float]  # oldest ringing call's start, or 0.0
    callbacks_pending: Counter[str]  # numbers owed a callback, by line


class CallTracker:
    """Thread-safe call state and statistics, driven by events and an external clock."""

    def __init__(
        self,
        stats: Statistics,
        forward_grace: float,
        expire_after: float,
        max_open: int | None = None,
        *,
        targets: ServiceTargets | None = None,
        callbacks: Callbacks | None = None,
    ) -> None:
        self.stats = stats
        self.forward_grace = forward_grace
        self.expire_after = expire_after
        self.max_open = max_open
        self.callbacks = Callbacks() if callbacks is None else callbacks
        self._lock = threading.Lock()
        self.labels = self._labeler(LabelConfig())
        self.targets = TargetsByLine(targets or ServiceTargets(), {})
        self._ringing = RingingCalls()
        self._legs: dict[str, Leg] = {}
        # Ordered by last event, oldest first, so expiry only looks at the front.
        self._calls: OrderedDict[str, Call] = OrderedDict()
        # The grace is the same for every call, so deadlines arrive in order.
        self._graces: deque[tuple[float, Call]] = deque()
        self._active: ActiveCalls = Counter()

    def handle(self, event: Event, now: float) -> Handled:
        """Apply one valid event received at `now`."""
        with self._lock:
            self.stats.last_received = now
            if isinstance(event, NewCall):
                return self._new_call(event, now)
            if isinstance(event, Answer):
                return self._answer(event, now)
            if isinstance(event, Hangup):
                return self._hangup(event, now)
            if isinstance(event, Dtmf):
                return self._dtmf(event, now)
            return UNMATCHED

    def configure_labels(self, config: LabelConfig) -> None:
        """Use new lines, teams and users from now on; calls in progress keep their labels."""
        labeler = self._labeler(config)
        targets = TargetsByLine(self.targets.default, config.targets)
        with self._lock:
            self.labels = labeler
            self.targets = targets

    def _labeler(self, config: LabelConfig) -> Labeler:
        return Labeler(config, self._count_overflow)

    def _count_overflow(self, label: str) -> None:
        self.stats.overflow[label] += 1

    def sweep_due(self, now: float) -> bool:
        """Whether a sweep at `now` would end a call."""
        with self._lock:
            if self._graces and self._graces[0][0] <= now:
                return True
            oldest = next(iter(self._calls.values()), None)
            if oldest is not None and oldest.last_event_at <= now - self.expire_after:
                return True
            return self.callbacks.expiry_due(now)

    def sweep(self, now: float) -> tuple[EndedCall, ...]:
        """End calls whose forward grace ran out or that saw no event for too long."""
        ended = []
        with self._lock:
            graces = self._graces
            while graces and graces[0][0] <= now:
                deadline, call = graces.popleft()
                if call.grace_until == deadline and self._calls.get(call.call_id) is call:
                    ended.append(self._end(call, call.outcome()))
            cutoff = now - self.expire_after
            calls = self._calls
            while calls:
                oldest = next(iter(calls.values()))
                if oldest.last_event_at > cutoff:
                    break
                ended.append(self._end(oldest, EXPIRED))
            self._count_debts(self.callbacks.expire(now))
        return tuple(ended)

    def evict(
        self, call_ids: Iterable[str], debts: Iterable[tuple[bytes, str]] = ()
    ) -> tuple[EndedCall, ...]:
        """End those of `call_ids` still in progress as expired and close those of the callback
        `debts` (hash, line) still owed, counted as `max_open` and `max_pending` count what
        they push out: for a store that keeps the bounds itself."""
        with self._lock:
            ended = []
            for call_id in call_ids:
                call = self._calls.get(call_id)
                if call is not None:
                    self.stats.evicted += 1
                    ended.append(self._end(call, EXPIRED))
            self._count_debts(self.callbacks.drop(debts))
        return tuple(ended)

    def read(self) -> Reading:
        """Consistent copies of everything counted."""
        with self._lock:
            return Reading(
                self.stats.copy(),
                self._active.copy(),
                self.labels.values(),
                self._ringing.oldest(),
                self.callbacks.pending_by_line(),
            )

    def export_state(self) -> dict[str, Any]:
        """Plain data to rebuild this tracker from with `restore_state`."""
        with self._lock:
            calls = [call_record(call, self._legs) for call in self._calls.values()]
            stats = self.stats.to_dict()
            callbacks = self.callbacks.export_state()
        return {"stats": stats, "calls": calls, "callbacks": callbacks}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Replace everything with what `export_state` gave."""
        with self._lock:
            self.stats.load_dict(state["stats"])
            self._load(state["calls"], state.get("callbacks"))

    def part(self, calls: list[Any], debts: list[Any]) -> CallTracker:
        """A tracker with this one's settings, labels and thresholds that holds only `calls`
        and callback `debts` (as `export_state` writes them) and counts from zero: for a
        store that keeps calls elsewhere and hands over a few at a time."""
        # The store bounds its debts, not the part; they are opened in the order they began.
        callbacks = Callbacks(self.callbacks.expire_after, sys.maxsize, self.callbacks.key)
        part = CallTracker(
            self.stats.zeroed(), self.forward_grace, self.expire_after, callbacks=callbacks
        )
        part.labels = self.labels.reporting_to(part._count_overflow)
        part.targets = self.targets
        in_order = sorted(debts, key=itemgetter(2))
        part._load(calls, {"key": self.callbacks.key.hex(), "debts": in_order})
        return part

    def _load(self, calls: list[Any], callbacks: dict[str, Any] | None) -> None:
        """Replace the calls in progress and the callback debts."""
        self._legs.clear()
        self._calls.clear()
        self._graces.clear()
        self._active.clear()
        self._ringing.clear()
        self._count_debts(self.callbacks.restore_state(callbacks))
        for record in calls:
            call, legs = restore_call(record)
            self._legs.update(legs)
            self._calls[call.call_id] = call
            self._active[(call.direction, call.state, call.line)] += 1
        for call in sorted(self._calls.values(), key=attrgetter("started_at")):
            if call.state == RINGING:
                self._ringing.add((call.direction, call.line), call.call_id, call.started_at)
        graces = sorted(
            ((call.grace_until, call) for call in self._calls.values() if call.grace_until),
            key=lambda pair: pair[0],
        )
        self._graces.extend(graces)

    @property
    def open_calls(self) -> int:
        """Number of calls in progress."""
        return len(self._calls)

    def _new_call(self, event: NewCall, now: float) -> Handled:
        if event.call_id in self._legs:
            self.stats.unmatched[NEW_CALL] += 1
            return UNMATCHED
        parent = self._legs.get(event.orig_call_id) if event.orig_call_id else None
        ended: tuple[EndedCall, ...] = ()
        if parent is None:
            if self.max_open is not None and len(self._calls) >= self.max_open:
                # A flood of calls that never hang up must not grow memory without bound.
                self.stats.evicted += 1
                ended = (self._end(next(iter(self._calls.values())), EXPIRED),)
            call = self._start_call(event, now)
        else:
            call = parent.call
            call.grace_until = None
            self._touch(call, now)
        self._legs[event.call_id] = Leg(call, voicemail=event.is_voicemail)
        call.leg_ids.append(event.call_id)
        call.open_legs += 1
        return Handled(matched=True, ended=ended)

    def _start_call(self, event: NewCall, now: float) -> Call:
        labels, stats = self.labels, self.stats
        outgoing = event.direction == OUT
        line = labels.line(event.from_number if outgoing else event.to_number)
        call = Call(event.call_id, event.direction, now, line)
        call.party = self.callbacks.digest(event.to_number if outgoing else event.from_number)
        self._calls[call.call_id] = call
        stats.calls_started[(call.direction, line)] += 1
        self._active[(call.direction, RINGING, line)] += 1
        self._ringing.add((call.direction, line), call.call_id, now)
        if outgoing:
            caller = _first(event.users), _first(event.user_ids), _first(event.full_user_ids)
            call.team, call.user = labels.team(*caller), labels.user(caller[0])
            stats.team_outgoing[call.team] += 1
            if call.user is not None:
                stats.user_outgoing[call.user] += 1
        return call

    def _answer(self, event: Answer, now: float) -> Handled:
        leg = self._legs.get(event.call_id)
        if leg is None or leg.answered or leg.hung_up:
            self.stats.unmatched[ANSWER] += 1
            return UNMATCHED
        leg.answered = True
        call = leg.call
        self._touch(call, now)
        by_voicemail = call.direction != OUT and (leg.voicemail or event.is_voicemail)
        if not by_voicemail and call.direction != OUT:
            if event.user:
                call.named = True
            elif call.named is None:
                call.named = False
            if call.team is None:
                call.team = self.labels.team(event.user, event.user_id, event.full_user_id)
                call.user = self.labels.user(event.user)
        self._mark_answered(call, now, by_voicemail)
        return MATCHED

    def _hangup(self, event: Hangup, now: float) -> Handled:
        self.stats.hangups[(event.direction, event.cause_label)] += 1
        leg = self._legs.get(event.call_id)
        if leg is None or leg.hung_up:
            self.stats.unmatched[HANGUP] += 1
            return UNMATCHED
        leg.hung_up = True
        call = leg.call
        self._touch(call, now)
        if event.cause == NORMAL_CLEARING and not leg.answered:
            # The answer got lost: the leg was established, so somebody took it.
            by_voicemail = call.direction != OUT and leg.voicemail
            self._mark_answered(call, None, by_voicemail)
        call.open_legs -= 1
        call.last_cause = event.cause
        call.last_hangup_at = now
        if call.open_legs > 0:
            return MATCHED
        if event.cause == FORWARDED and self.forward_grace > 0:
            call.grace_until = now + self.forward_grace
            self._graces.append((call.grace_until, call))
            return MATCHED
        return Handled(matched=True, ended=(self._end(call, call.outcome()),))

    def _dtmf(self, event: Dtmf, now: float) -> Handled:
        self.stats.dtmf_events += 1
        leg = self._legs.get(event.call_id)
        if leg is None:
            self.stats.unmatched[DTMF] += 1
            return UNMATCHED
        self._touch(leg.call, now)
        return MATCHED

    def _touch(self, call: Call, now: float) -> None:
        call.last_event_at = now
        self._calls.move_to_end(call.call_id)

    def _mark_answered(self, call: Call, now: float | None, by_voicemail: bool) -> None:
        """Note an answer; `now` is None when the answer's time is unknown."""
        before = call.state
        if by_voicemail:
            call.voicemail_answered = True
        elif not call.person_answered:
            call.person_answered = True
            # A person took it: the caller needs no callback, or was called back.
            result = CALLED_BACK if call.direction == OUT else CALLED_AGAIN
            answered_at = call.started_at if now is None else now
            self._count_debts(self.callbacks.settle(call.party, answered_at, result))
        if now is not None and call.answered_at is None:
            call.answered_at = now
        if before != call.state:
            self._active[(call.direction, before, call.line)] -= 1
            self._active[(call.direction, call.state, call.line)] += 1
            self._ringing.remove((call.direction, call.line), call.call_id)

    def _count_debts(self, closed: tuple[ClosedDebt, ...]) -> None:
        stats = self.stats
        for debt in closed:
            if debt.result == DROPPED:
                stats.callbacks_dropped += 1
                continue
            stats.callbacks[(debt.line, debt.result)] += 1
            if debt.delay is not None:
                stats.observe_callback_delay(debt.line, debt.delay)

    def _end(self, call: Call, outcome: str) -> EndedCall:
        del self._calls[call.call_id]
        for leg_id in call.leg_ids:
            del self._legs[leg_id]
        self._active[(call.direction, call.state, call.line)] -= 1
        if call.state == RINGING:
            self._ringing.remove((call.direction, call.line), call.call_id)
        stats = self.stats
        stats.calls_ended[(call.direction, outcome, call.line)] += 1
        wait = duration = None
        if outcome != EXPIRED:
            answered = outcome in (ANSWERED, VOICEMAIL)
            if not answered:
                wait = max(0.0, call.last_hangup_at - call.started_at)
            elif call.answered_at is not None:
                wait = max(0.0, call.answered_at - call.started_at)
                duration = max(0.0, call.last_hangup_at - call.answered_at)
                answered_by = _answered_by(call, outcome)
                stats.observe_duration((call.direction, answered_by, call.line), duration)
            if wait is not None:
                stats.observe_wait((call.direction, outcome, call.line), wait)
            if call.direction != OUT:
                self._count_incoming(call, outcome, wait, duration)
        return EndedCall(call.call_id, call.direction, outcome, len(call.leg_ids), wait, duration)

    def _count_incoming(
        self, call: Call, outcome: str, wait: float | None, duration: float | None
    ) -> None:
        stats, key = self.stats, (call.direction, call.line)
        count_service_level(stats, key, outcome, wait, self.targets(call.line))
        if outcome == ANSWERED:
            if call.team is not None:
                stats.count_answered(call.team, call.user, duration or 0.0)
            if call.named is False:
                stats.answered_unnamed[key] += 1
        elif outcome in OWED_OUTCOMES:
            self._count_debts(self.callbacks.owe(call.party, call.line, call.last_hangup_at))


def _answered_by(call: Call, outcome: str) -> str:
    if outcome == VOICEMAIL:
        return VOICEMAIL
    return UNNAMED if call.named is False else PERSON


def _first(values: tuple[str, ...]) -> str | None:
    return values[0] if values else None
