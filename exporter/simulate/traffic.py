"""Plan realistic sipgate.io call traffic: the exact event sequences of SIPGATE.md, seeded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

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
    """A whole call: its events in order and the outcome the exporter should record."""

    direction: str
    outcome: str
    events: tuple[PlannedEvent, ...]


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
        return "49" + "".join(self._rng.choice("0123456789") for _ in range(10))

    def _incoming(self, start: float) -> PlannedCall:
        profile, rng = self.profile, self._rng
        caller = (
            "anonymous" if self._chance(profile.anonymous_probability) else self._external_number()
        )
        call = _CallBuilder(start, IN, caller, rng.choice(ACCOUNT_LINES))
        first = self._call_id()
        group = self._chance(profile.group_probability)
        users = tuple(rng.sample(STAFF, 3)) if group else (rng.choice(STAFF),)
        call.new_call(first, first, users)
        if self._chance(profile.lost_followup_probability):
            return PlannedCall(IN, EXPIRED, tuple(call.events))
        if self._chance(profile.answer_probability):
            self._answered_incoming(call, first, users)
            return PlannedCall(IN, ANSWERED, tuple(call.events))
        outcome = self._unanswered_incoming(call, first)
        return PlannedCall(IN, outcome, tuple(call.events))

    def _answered_incoming(self, call: _CallBuilder, first: str, users: tuple[str, ...]) -> None:
        profile, rng = self.profile, self._rng
        if self._chance(profile.forward_probability):
            # Forward: the first leg ends `forwarded`, a new leg rings someone else.
            call.wait(self._ring())
            call.hangup(first, "forwarded")
            second = self._call_id()
            call.wait(0.3)
            call.new_call(second, first, (rng.choice(STAFF),), diversion=call.numbers["to"])
            call.wait(self._ring())
            call.answer(second, rng.choice(STAFF))
            call.wait(self._talk())
            call.hangup(second, "normalClearing")
            return
        call.wait(self._ring())
        call.answer(first, rng.choice(users))
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
        call.wait(self._ring() * (2 if outcome == MISSED else 1))
        call.hangup(first, cause)
        return outcome

    def _outgoing(self, start: float) -> PlannedCall:
        rng = self._rng
        call = _CallBuilder(start, OUT, rng.choice(ACCOUNT_LINES), self._external_number())
        leg = self._call_id()
        call.new_call(leg, leg, (rng.choice(STAFF),))
        if self._chance(self.profile.answer_probability):
            call.wait(self._ring())
            call.answer(leg, None)
            call.wait(self._talk())
            call.hangup(leg, "normalClearing")
            return PlannedCall(OUT, ANSWERED, tuple(call.events))
        cause, outcome = rng.choice(
            [("cancel", MISSED), ("busy", BUSY), ("noAnswer", REJECTED), ("notFound", FAILED)]
        )
        call.wait(self._ring())
        call.hangup(leg, cause)
        return PlannedCall(OUT, outcome, tuple(call.events))
