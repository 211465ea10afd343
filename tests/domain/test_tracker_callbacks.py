"""Missed callers owed a callback, as the call tracker opens and settles their debts."""

from __future__ import annotations

import json

import pytest

from exporter.domain.callbacks import Callbacks
from exporter.domain.events import Answer, Hangup, NewCall
from exporter.domain.labels import LabelConfig
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from tests.conftest import EXPIRE_AFTER, FORWARD_GRACE, FakeClock

LINE_NUMBER = "4921100000001"
CUSTOMER = "4915112345678"
DAY = 86400.0


class Calls:
    """Incoming and outgoing calls between the hotline and customers, on an injected clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.tracker = CallTracker(
            new_statistics(), FORWARD_GRACE, EXPIRE_AFTER, callbacks=Callbacks(expire_after=DAY)
        )
        self.tracker.configure_labels(LabelConfig(lines={LINE_NUMBER: "hotline"}))
        self._ids = 0

    def incoming(self, caller: str, *, answered: bool, ring: float = 10.0) -> None:
        call_id = self._start("in", caller, LINE_NUMBER)
        self._end(call_id, "in", answered, ring)

    def outgoing(self, callee: str, *, answered: bool, ring: float = 10.0) -> None:
        call_id = self._start("out", LINE_NUMBER, callee)
        self._end(call_id, "out", answered, ring)

    def pending(self) -> int:
        return self.tracker.read().callbacks_pending["hotline"]

    def results(self) -> dict[str, int]:
        return {result: n for (_line, result), n in self.tracker.stats.callbacks.items() if n}

    def delays(self) -> tuple[int, float]:
        histogram = self.tracker.stats.callback_delay.get("hotline")
        return (histogram.count, histogram.total) if histogram else (0, 0.0)

    def _start(self, direction: str, caller: str, callee: str) -> str:
        self._ids += 1
        call_id = str(self._ids)
        event = NewCall(call_id=call_id, direction=direction, from_number=caller, to_number=callee)
        self.tracker.handle(event, self.clock.now)
        return call_id

    def _end(self, call_id: str, direction: str, answered: bool, ring: float) -> None:
        tracker, clock = self.tracker, self.clock
        if answered:
            tracker.handle(
                Answer(call_id=call_id, direction=direction, user="Doc"), clock.advance(ring)
            )
            tracker.handle(
                Hangup(call_id=call_id, direction=direction, cause="normalClearing"),
                clock.advance(60),
            )
        else:
            tracker.handle(
                Hangup(call_id=call_id, direction=direction, cause="cancel"), clock.advance(ring)
            )


@pytest.fixture
def calls(clock: FakeClock) -> Calls:
    return Calls(clock)


def test_a_missed_caller_called_back_settles_the_debt(calls: Calls) -> None:
    calls.incoming(CUSTOMER, answered=False)
    assert calls.pending() == 1
    calls.clock.advance(3600)
    calls.outgoing(CUSTOMER, answered=True, ring=5)

    assert calls.pending() == 0
    assert calls.results() == {"called_back": 1}
    assert calls.delays() == (1, 3605.0)


def test_an_unanswered_call_back_settles_nothing(calls: Calls) -> None:
    calls.incoming(CUSTOMER, answered=False)
    calls.outgoing(CUSTOMER, answered=False)

    assert calls.pending() == 1
    assert calls.results() == {}


def test_the_caller_calling_again_and_reaching_someone_settles_it(calls: Calls) -> None:
    calls.incoming(CUSTOMER, answered=False)
    calls.clock.advance(600)
    calls.incoming(CUSTOMER, answered=True, ring=4)

    assert calls.pending() == 0
    assert calls.results() == {"called_again": 1}
    assert calls.delays() == (1, 604.0)


def test_several_misses_are_one_debt_settled_once(calls: Calls) -> None:
    for _ in range(3):
        calls.incoming(CUSTOMER, answered=False)
    assert calls.pending() == 1
    calls.outgoing(CUSTOMER, answered=True)
    calls.outgoing(CUSTOMER, answered=True)

    assert calls.results() == {"called_back": 1}


def test_a_debt_expires(calls: Calls) -> None:
    calls.incoming(CUSTOMER, answered=False)
    assert calls.tracker.sweep_due(calls.clock.advance(DAY - 1)) is False
    calls.tracker.sweep(calls.clock.advance(1))

    assert calls.pending() == 0
    assert calls.results() == {"expired": 1}
    calls.outgoing(CUSTOMER, answered=True)
    assert calls.results() == {"expired": 1}


@pytest.mark.parametrize("caller", ["anonymous", ""])
def test_an_anonymous_caller_is_never_owed(calls: Calls, caller: str) -> None:
    calls.incoming(caller, answered=False)

    assert calls.pending() == 0


def test_answered_and_expired_calls_owe_nothing(calls: Calls) -> None:
    calls.incoming(CUSTOMER, answered=True)
    calls.tracker.handle(
        NewCall(call_id="X", direction="in", from_number="4915100000000", to_number=LINE_NUMBER),
        calls.clock.now,
    )
    calls.tracker.sweep(calls.clock.advance(EXPIRE_AFTER + 1))

    assert calls.pending() == 0


def test_debts_survive_a_restore_and_no_number_is_kept_in_clear(calls: Calls) -> None:
    calls.incoming(CUSTOMER, answered=False)
    calls.tracker.handle(
        NewCall(call_id="R", direction="in", from_number="4915199999999", to_number=LINE_NUMBER),
        calls.clock.now,
    )
    state = calls.tracker.export_state()
    text = json.dumps(state)
    assert CUSTOMER not in text
    assert "4915199999999" not in text

    calls.tracker = restored = CallTracker(new_statistics(), FORWARD_GRACE, EXPIRE_AFTER)
    restored.configure_labels(LabelConfig(lines={LINE_NUMBER: "hotline"}))
    restored.restore_state(json.loads(text))
    calls.outgoing(CUSTOMER, answered=True)
    restored.handle(Hangup(call_id="R", direction="in", cause="cancel"), calls.clock.advance(8))

    assert calls.results() == {"called_back": 1}
    assert calls.pending() == 1  # the call in progress at the snapshot was missed after it
