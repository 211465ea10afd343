"""Follow calls through their legs and count them: the exporter's state machine."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from operator import attrgetter
from typing import Any, Final

from exporter.domain.calls import (
    ANSWERED,
    EXPIRED,
    MATCHED,
    PERSON,
    RINGING,
    UNMATCHED,
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
from exporter.domain.statistics import Statistics

# What a saved state keeps of a call and of each leg, in this order.
_CALL_FIELD_NAMES: Final = (
    "call_id",
    "direction",
    "started_at",
    "last_event_at",
    "answered_at",
    "person_answered",
    "voicemail_answered",
    "last_cause",
    "last_hangup_at",
    "grace_until",
    "open_legs",
    "line",
    "team",
    "user",
)
_CALL_FIELDS: Final = attrgetter(*_CALL_FIELD_NAMES)
_LEG_FIELDS: Final = attrgetter("voicemail", "answered", "hung_up")

ActiveCalls = Counter[tuple[str, str, str]]


class CallTracker:
    """Thread-safe call state and statistics, driven by events and an external clock."""

    def __init__(
        self,
        stats: Statistics,
        forward_grace: float,
        expire_after: float,
        max_open: int | None = None,
    ) -> None:
        self.stats = stats
        self.forward_grace = forward_grace
        self.expire_after = expire_after
        self.max_open = max_open
        self._lock = threading.Lock()
        self.labels = Labeler(LabelConfig(), self._count_overflow)
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
        labeler = Labeler(config, self._count_overflow)
        with self._lock:
            self.labels = labeler

    def _count_overflow(self, label: str) -> None:
        self.stats.overflow[label] += 1

    def sweep_due(self, now: float) -> bool:
        """Whether a sweep at `now` would end a call."""
        with self._lock:
            if self._graces and self._graces[0][0] <= now:
                return True
            oldest = next(iter(self._calls.values()), None)
            return oldest is not None and oldest.last_event_at <= now - self.expire_after

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
        return tuple(ended)

    def read(self) -> tuple[Statistics, ActiveCalls, LabelValues]:
        """Consistent copies of the statistics, of active calls by (direction, state, line),
        and of the label values in use."""
        with self._lock:
            return self.stats.copy(), self._active.copy(), self.labels.values()

    def export_state(self) -> dict[str, Any]:
        """Plain data to rebuild this tracker from with `restore_state`."""
        with self._lock:
            calls = [self._call_record(call) for call in self._calls.values()]
            stats = self.stats.copy()
        return {"stats": stats.to_dict(), "calls": calls}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Replace everything with what `export_state` gave."""
        with self._lock:
            self.stats.load_dict(state["stats"])
            self._legs.clear()
            self._calls.clear()
            self._graces.clear()
            self._active.clear()
            for record in state["calls"]:
                call = self._restore_call(record)
                self._calls[call.call_id] = call
                self._active[(call.direction, call.state, call.line)] += 1
            graces = sorted(
                ((call.grace_until, call) for call in self._calls.values() if call.grace_until),
                key=lambda pair: pair[0],
            )
            self._graces.extend(graces)

    def _call_record(self, call: Call) -> tuple[Any, ...]:
        # Runs under the lock for every call in progress: attrgetter copies in C.
        legs = self._legs
        return (
            *_CALL_FIELDS(call),
            [(leg_id, *_LEG_FIELDS(legs[leg_id])) for leg_id in call.leg_ids],
        )

    def _restore_call(self, record: list[Any]) -> Call:
        *fields, legs = record
        values = dict(zip(_CALL_FIELD_NAMES, fields, strict=True))
        call = Call(values["call_id"], values["direction"], values["started_at"], values["line"])
        for name, value in values.items():
            setattr(call, name, value)
        for leg_id, voicemail, answered, hung_up in legs:
            leg = Leg(call, voicemail)
            leg.answered, leg.hung_up = answered, hung_up
            self._legs[leg_id] = leg
            call.leg_ids.append(leg_id)
        return call

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
        self._calls[call.call_id] = call
        stats.calls_started[(call.direction, line)] += 1
        self._active[(call.direction, RINGING, line)] += 1
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
        if not by_voicemail and call.direction != OUT and call.team is None:
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
        else:
            call.person_answered = True
        if now is not None and call.answered_at is None:
            call.answered_at = now
        if before != call.state:
            self._active[(call.direction, before, call.line)] -= 1
            self._active[(call.direction, call.state, call.line)] += 1

    def _end(self, call: Call, outcome: str) -> EndedCall:
        del self._calls[call.call_id]
        for leg_id in call.leg_ids:
            del self._legs[leg_id]
        self._active[(call.direction, call.state, call.line)] -= 1
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
                answered_by = PERSON if outcome == ANSWERED else VOICEMAIL
                stats.observe_duration((call.direction, answered_by, call.line), duration)
            if wait is not None:
                stats.observe_wait((call.direction, outcome, call.line), wait)
            if outcome == ANSWERED and call.direction != OUT and call.team is not None:
                stats.count_answered(call.team, call.user, duration or 0.0)
        return EndedCall(call.call_id, call.direction, outcome, len(call.leg_ids), wait, duration)


def _first(values: tuple[str, ...]) -> str | None:
    return values[0] if values else None
