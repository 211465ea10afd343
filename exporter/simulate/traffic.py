"""Plan realistic sipgate.io call traffic: the exact event sequences of SIPGATE.md, seeded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from exporter.domain.callbacks import CALLED_AGAIN, CALLED_BACK, OWED_OUTCOMES
from exporter.domain.calls import (
    ANSWERED,
    BUSY,
    EXPIRED,
    FAILED,
    FORWARDED_OUTCOME,
    MISSED,
    REJECTED,
    VOICEMAIL,
)
from exporter.domain.events import IN, OUT

ACCOUNT_LINES: Final = ("4921112345670", "4921112345671", "4930987654320")
STAFF: Final = ("Alice", "Bob", "Jürgen", "Zoë", "Marty", "Doc")
ANONYMOUS: Final = "anonymous"
# A missed caller calls again, or is called back, this many simulated seconds after the missed
# call ended at the earliest; after a call that ended `forwarded` later still, since the exporter
# ends that call only after --calls.forward-grace (10 s, real time: at --speed 60 that is 600
# simulated seconds). Past a day the planner forgets the caller (the exporter's debt expires
# after --callbacks.expire-after, 3 days by default).
CALLBACK_AFTER: Final = 60.0
CALLBACK_AFTER_FORWARD: Final = 900.0
FORGET_AFTER: Final = 86400.0


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """Shape of the traffic; probabilities are shares of calls, times are simulated seconds."""

    calls_per_minute: float = 6.0
    incoming_share: float = 0.7
    answer_probability: float = 0.75
    voicemail_probability: float = 0.4
    busy_probability: float = 0.1
    forward_probability: float = 0.1
    transfer_probability: float = 0.1
    group_probability: float = 0.3
    anonymous_probability: float = 0.1
    lost_followup_probability: float = 0.0
    short_abandon_probability: float = 0.3
    slow_answer_probability: float = 0.15
    unnamed_answer_probability: float = 0.1
    call_again_probability: float = 0.15
    callback_probability: float = 0.5
    median_wait: float = 8.0
    median_talk: float = 90.0


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """One webhook request, `at` simulated seconds after the start of the run."""

    at: float
    name: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A whole call: its events in order and what the exporter should record for it.

    `owes` is 1 when the call leaves its caller owed a callback who was not owed one before;
    `settles` holds the result (called_back, called_again) of each callback debt it settles.
    """

    direction: str
    outcome: str
    events: tuple[PlannedEvent, ...]
    owes: int = 0
    settles: tuple[str, ...] = ()


@dataclass(slots=True)
class _Debtor:
    """A caller owed a callback: the number, the sipgate number they called, since when."""

    number: str
    line: str
    since: float
    ready_at: float  # from when the next call with this number may start


class _CallBuilder:
    """Collects the events of one call as time moves on."""

    def __init__(self, start: float, direction: str, caller: str, callee: str) -> None:
        self.now = start
        self.direction = direction
        self.numbers = {"from": caller, "to": callee}
        self.events: list[PlannedEvent] = []

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def new_call(
        self, call_id: str, orig: str, users: tuple[str, ...], diversion: str | None = None
    ) -> None:
        fields = [
            ("event", "newCall"),
            ("direction", self.direction),
            *self.numbers.items(),
            ("callId", call_id),
            ("origCallId", orig),
            ("xcid", f"x{orig}"),
        ]
        for index, user in enumerate(users):
            fields += [
                ("user[]", user),
                ("userId[]", f"w{index}"),
                ("fullUserId[]", f"1234567w{index}"),
            ]
        if diversion:
            fields.append(("diversion", diversion))
        self._add("newCall", fields)

    def answer(self, call_id: str, user: str | None) -> None:
        fields = [
            ("event", "answer"),
            ("direction", self.direction),
            *self.numbers.items(),
            ("callId", call_id),
        ]
        if user is not None:
            fields += [("user", user), ("userId", "w0"), ("fullUserId", "1234567w0")]
        fields.append(("answeringNumber", self.numbers["to"]))
        self._add("answer", fields)

    def hangup(self, call_id: str, cause: str) -> None:
        fields = [
            ("event", "hangup"),
            ("direction", self.direction),
            *self.numbers.items(),
            ("callId", call_id),
            ("cause", cause),
            ("answeringNumber", self.numbers["to"]),
        ]
        self._add("hangup", fields)

    def _add(self, name: str, fields: list[tuple[str, str]]) -> None:
        self.events.append(PlannedEvent(self.now, name, urlencode(fields).encode()))


class TrafficPlanner:
    """An endless, reproducible stream of planned calls with Poisson arrivals."""

    def __init__(self, profile: TrafficProfile, seed: int) -> None:
        self.profile = profile
        self._rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not secrets
        self._clock = 0.0
        self._serial = 0
        self._prefix = f"{seed:x}"
        # Callers owed a callback and not in a call now, oldest first; and every number owed.
        self._waiting: list[_Debtor] = []
        self._owed: set[str] = set()

    def __iter__(self) -> Iterator[PlannedCall]:
        return self

    def __next__(self) -> PlannedCall:
        self._clock += self._rng.expovariate(self.profile.calls_per_minute / 60.0)
        if self._rng.random() < self.profile.incoming_share:
            return self._incoming(self._clock)
        return self._outgoing(self._clock)

    def _call_id(self) -> str:
        self._serial += 1
        return f"{self._prefix}-{self._serial:07d}"

    def _ring(self) -> float:
        return self._lognormal(self.profile.median_wait, 0.6, 1.0, 90.0)

    def _talk(self) -> float:
        return self._lognormal(self.profile.median_talk, 1.0, 5.0, 3600.0)

    def _lognormal(self, median: float, sigma: float, low: float, high: float) -> float:
        return min(high, max(low, self._rng.lognormvariate(0.0, sigma) * median))

    def _chance(self, probability: float) -> bool:
        return self._rng.random() < probability

    def _external_number(self) -> str:
        while True:  # never a number owed a callback: its calls would settle the debt
            number = "49" + "".join(self._rng.choice("0123456789") for _ in range(10))
            if number not in self._owed:
                return number

    def _incoming(self, start: float) -> PlannedCall:
        profile, rng = self.profile, self._rng
        debtor = self._debtor(start, profile.call_again_probability)
        if debtor is not None:
            caller, line = debtor.number, debtor.line  # calls the same number again
        else:
            anonymous = self._chance(profile.anonymous_probability)
            caller = ANONYMOUS if anonymous else self._external_number()
            line = rng.choice(ACCOUNT_LINES)
        call = _CallBuilder(start, IN, caller, line)
        first = self._call_id()
        group = self._chance(profile.group_probability)
        users = tuple(rng.sample(STAFF, 3)) if group else (rng.choice(STAFF),)
        call.new_call(first, first, users)
        if self._chance(profile.lost_followup_probability):
            # The call never ends: a debtor stays owed, but is never called again.
            return PlannedCall(IN, EXPIRED, tuple(call.events))
        if self._chance(profile.answer_probability):
            self._answered_incoming(call, first, users)
            return self._settled(call, ANSWERED, debtor, CALLED_AGAIN)
        outcome = self._unanswered_incoming(call, first)
        return self._missed(call, outcome, debtor)

    def _answered_incoming(self, call: _CallBuilder, first: str, users: tuple[str, ...]) -> None:
        profile, rng = self.profile, self._rng
        # A slow answer: the caller waited in a queue, past the default 20 s target.
        slow = self._chance(profile.slow_answer_probability)
        ring = self._lognormal(40.0, 0.4, 21.0, 300.0) if slow else self._ring()
        if self._chance(profile.forward_probability):
            # Forward: the first leg ends `forwarded`, a new leg rings someone else.
            call.wait(ring)
            call.hangup(first, "forwarded")
            second = self._call_id()
            call.wait(0.3)
            call.new_call(second, first, (rng.choice(STAFF),), diversion=call.numbers["to"])
            call.wait(self._ring())
            call.answer(second, rng.choice(STAFF))
            call.wait(self._talk())
            call.hangup(second, "normalClearing")
            return
        call.wait(ring)
        # An answer without a user: a queue, a pickup or an external phone took the call.
        unnamed = self._chance(profile.unnamed_answer_probability)
        call.answer(first, None if unnamed else rng.choice(users))
        if self._chance(profile.transfer_probability):
            # Transfer: a new leg starts while the first is still connected.
            call.wait(self._talk() / 3)
            second = self._call_id()
            call.new_call(second, first, (rng.choice(STAFF),))
            call.wait(self._ring())
            call.answer(second, rng.choice(STAFF))
            call.wait(0.5)
            call.hangup(first, "normalClearing")
            call.wait(self._talk())
            call.hangup(second, "normalClearing")
            return
        call.wait(self._talk())
        call.hangup(first, "normalClearing")

    def _unanswered_incoming(self, call: _CallBuilder, first: str) -> str:
        profile, rng = self.profile, self._rng
        roll = rng.random()
        if roll < profile.voicemail_probability:
            call.wait(self._ring() * 2)
            call.hangup(first, "forwarded")
            second = self._call_id()
            call.wait(0.3)
            call.new_call(second, first, ("voicemail",))
            call.wait(0.5)
            call.answer(second, "voicemail")
            call.wait(self._lognormal(20.0, 0.5, 3.0, 180.0))
            call.hangup(second, "normalClearing")
            return VOICEMAIL
        roll -= profile.voicemail_probability
        if roll < profile.busy_probability:
            call.wait(0.5)
            call.hangup(first, "busy")
            return BUSY
        cause, outcome = rng.choice(
            [("cancel", MISSED)] * 6
            + [("noAnswer", REJECTED), ("congestion", FAILED), ("forwarded", FORWARDED_OUTCOME)]
        )
        if outcome == MISSED and self._chance(profile.short_abandon_probability):
            call.wait(rng.uniform(0.5, 4.0))  # hung up at once: a short abandon
        else:
            call.wait(self._ring() * (2 if outcome == MISSED else 1))
        call.hangup(first, cause)
        return outcome

    def _outgoing(self, start: float) -> PlannedCall:
        rng = self._rng
        debtor = self._debtor(start, self.profile.callback_probability)
        callee = self._external_number() if debtor is None else debtor.number
        call = _CallBuilder(start, OUT, rng.choice(ACCOUNT_LINES), callee)
        leg = self._call_id()
        call.new_call(leg, leg, (rng.choice(STAFF),))
        if self._chance(self.profile.answer_probability):
            call.wait(self._ring())
            call.answer(leg, None)
            call.wait(self._talk())
            call.hangup(leg, "normalClearing")
            return self._settled(call, ANSWERED, debtor, CALLED_BACK)
        cause, outcome = rng.choice(
            [("cancel", MISSED), ("busy", BUSY), ("noAnswer", REJECTED), ("notFound", FAILED)]
        )
        call.wait(self._ring())
        call.hangup(leg, cause)
        if debtor is not None:
            self._wait_again(debtor, call.now + CALLBACK_AFTER)
        return PlannedCall(OUT, outcome, tuple(call.events))

    # --- callers owed a callback ---------------------------------------------------------------

    def _debtor(self, start: float, probability: float) -> _Debtor | None:
        """Take, with the given probability, a caller owed a callback who may be called now."""
        waiting = self._waiting
        while waiting and waiting[0].since < start - FORGET_AFTER:
            self._owed.discard(waiting.pop(0).number)
        if not waiting or not self._chance(probability):
            return None
        ready = [index for index, debtor in enumerate(waiting) if debtor.ready_at <= start]
        return waiting.pop(self._rng.choice(ready)) if ready else None

    def _wait_again(self, debtor: _Debtor, ready_at: float) -> None:
        """Put a debtor back among the callers owed a callback, in the order they were owed."""
        debtor.ready_at = ready_at
        index = next(
            (n for n, other in enumerate(self._waiting) if other.since > debtor.since),
            len(self._waiting),
        )
        self._waiting.insert(index, debtor)

    def _settled(
        self, call: _CallBuilder, outcome: str, debtor: _Debtor | None, result: str
    ) -> PlannedCall:
        """A call a person answered: it settles the debt of the caller or callee, if any."""
        if debtor is None:
            return PlannedCall(call.direction, outcome, tuple(call.events))
        self._owed.discard(debtor.number)
        return PlannedCall(call.direction, outcome, tuple(call.events), settles=(result,))

    def _missed(self, call: _CallBuilder, outcome: str, debtor: _Debtor | None) -> PlannedCall:
        """An incoming call nobody answered: its caller is owed a callback from its end."""
        events = tuple(call.events)
        caller = call.numbers["from"]
        if outcome not in OWED_OUTCOMES or caller == ANONYMOUS:
            return PlannedCall(IN, outcome, events)
        after = CALLBACK_AFTER_FORWARD if outcome == FORWARDED_OUTCOME else CALLBACK_AFTER
        if debtor is not None:  # owed already: the same debt
            self._wait_again(debtor, call.now + after)
            return PlannedCall(IN, outcome, events)
        self._owed.add(caller)
        self._wait_again(_Debtor(caller, call.numbers["to"], call.now, 0.0), call.now + after)
        return PlannedCall(IN, outcome, events, owes=1)
