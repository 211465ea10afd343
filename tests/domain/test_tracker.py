"""Calls followed through their legs, as SIPGATE.md describes them, with an injected clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from exporter.domain.calls import Handled
from exporter.domain.events import Answer, Dtmf, Hangup, NewCall
from exporter.domain.statistics import Histogram
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from tests.conftest import EXPIRE_AFTER, FORWARD_GRACE, FakeClock


def new_call(
    call_id: str, direction: str = "in", orig: str | None = None, users: tuple[str, ...] = ("Doc",)
) -> NewCall:
    return NewCall(call_id=call_id, direction=direction, orig_call_id=orig or call_id, users=users)


def answer(call_id: str, user: str | None = "Doc", direction: str = "in") -> Answer:
    return Answer(call_id=call_id, direction=direction, user=user)


def hangup(call_id: str, cause: str = "normalClearing", direction: str = "in") -> Hangup:
    return Hangup(call_id=call_id, direction=direction, cause=cause)


class Scenario:
    """Feeds events to a tracker, `after` seconds apart, and reads its statistics back."""

    def __init__(self, tracker: CallTracker, clock: FakeClock) -> None:
        self.tracker = tracker
        self.clock = clock

    def at(self, after: float, event: NewCall | Answer | Hangup | Dtmf) -> Handled:
        return self.tracker.handle(event, self.clock.advance(after))

    def sweep_after(self, seconds: float) -> None:
        self.tracker.sweep(self.clock.advance(seconds))

    # The statistics summed over lines: without a configuration every call is on line `other`.
    def ended(self) -> dict[tuple[str, str], int]:
        return _by_first_two(self.tracker.stats.calls_ended)

    def active(self) -> dict[tuple[str, str], int]:
        return _by_first_two(self.tracker.read().active)

    def wait(self, direction: str, outcome: str) -> tuple[int, float]:
        return _histogram(self.tracker.stats.wait, direction, outcome)

    def duration(self, direction: str, answered_by: str) -> tuple[int, float]:
        return _histogram(self.tracker.stats.duration, direction, answered_by)

    def assert_ended(
        self,
        outcome: str,
        *,
        wait: tuple[int, float] | None = None,
        direction: str = "in",
        **durations: tuple[int, float],
    ) -> None:
        """Exactly one call ended, with `outcome`; its wait and durations by answerer, if given."""
        assert self.ended() == {(direction, outcome): 1}
        if wait is not None:
            assert self.wait(direction, outcome) == wait
        for answered_by, duration in durations.items():
            assert self.duration(direction, answered_by) == duration, answered_by

    def started(self) -> dict[str, int]:
        started: Counter[str] = Counter()
        for (direction, _line), count in self.tracker.stats.calls_started.items():
            started[direction] += count
        return {key: n for key, n in started.items() if n}


def _by_first_two(counts: Mapping[Any, int]) -> dict[tuple[str, str], int]:
    summed: Counter[tuple[str, str]] = Counter()
    for key, count in counts.items():
        summed[(key[0], key[1])] += count
    return {key: n for key, n in summed.items() if n}


def _histogram(histograms: Mapping[Any, Histogram], first: str, second: str) -> tuple[int, float]:
    matching = [h for key, h in histograms.items() if key[:2] == (first, second)]
    return sum(h.count for h in matching), sum(h.total for h in matching)


@pytest.fixture
def calls(tracker: CallTracker, clock: FakeClock) -> Scenario:
    return Scenario(tracker, clock)


def test_answered_call(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    assert calls.active() == {("in", "ringing"): 1}
    calls.at(5, answer("A"))
    assert calls.active() == {("in", "talking"): 1}
    calls.at(60, hangup("A"))
    assert calls.started() == {"in": 1}
    calls.assert_ended("answered", wait=(1, 5.0), person=(1, 60.0))
    assert calls.active() == {}


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        ("cancel", "missed"),
        ("busy", "busy"),
        ("noAnswer", "rejected"),
        ("congestion", "failed"),
        ("notFound", "failed"),
        ("somethingNew", "failed"),
    ],
)
def test_unanswered_outcome_follows_last_cause(calls: Scenario, cause: str, outcome: str) -> None:
    calls.at(0, new_call("A"))
    calls.at(12, hangup("A", cause))
    calls.assert_ended(outcome, wait=(1, 12.0), person=(0, 0.0))


def test_outgoing_answer_without_user_is_a_person(calls: Scenario) -> None:
    calls.at(0, new_call("O", direction="out", users=("Doc",)))
    calls.at(8, answer("O", user=None, direction="out"))
    calls.at(30, hangup("O", direction="out"))
    calls.assert_ended("answered", wait=(1, 8.0), person=(1, 30.0), direction="out")


def test_forward_is_one_call(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(10, hangup("A", "forwarded"))
    assert calls.active() == {("in", "ringing"): 1}
    calls.at(1, NewCall(call_id="B", direction="in", orig_call_id="A", diversion="4921100"))
    calls.at(4, answer("B", user="Marty"))
    calls.at(60, hangup("B"))
    assert calls.started() == {"in": 1}
    calls.assert_ended("answered", wait=(1, 15.0), person=(1, 60.0))
    assert calls.tracker.stats.hangups == {("in", "forwarded"): 1, ("in", "normalClearing"): 1}


def test_forward_without_next_leg_ends_after_grace(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(7, hangup("A", "forwarded"))
    calls.sweep_after(FORWARD_GRACE - 0.5)
    assert calls.ended() == {}
    assert calls.active() == {("in", "ringing"): 1}
    calls.sweep_after(0.5)
    calls.assert_ended("forwarded", wait=(1, 7.0))
    assert calls.active() == {}


def test_next_leg_after_grace_is_a_new_call(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(1, hangup("A", "forwarded"))
    calls.sweep_after(FORWARD_GRACE)
    calls.at(1, new_call("B", orig="A"))
    assert calls.started() == {"in": 2}
    assert calls.ended() == {("in", "forwarded"): 1}
    assert calls.active() == {("in", "ringing"): 1}


@pytest.mark.parametrize("old_leg_hangs_up_first", [True, False])
def test_transfer_in_both_orders(calls: Scenario, old_leg_hangs_up_first: bool) -> None:
    calls.at(0, new_call("A"))
    calls.at(3, answer("A", user="Doc"))
    calls.at(30, new_call("B", orig="A", users=("Marty",)))
    if old_leg_hangs_up_first:
        calls.at(2, hangup("A"))
        calls.at(3, answer("B", user="Marty"))
    else:
        calls.at(2, answer("B", user="Marty"))
        calls.at(3, hangup("A"))
    assert calls.ended() == {}
    assert calls.active() == {("in", "talking"): 1}
    calls.at(62, hangup("B"))
    assert calls.started() == {"in": 1}
    calls.assert_ended("answered", wait=(1, 3.0), person=(1, 97.0))


def test_old_leg_ending_normally_before_new_leg_ends_the_call(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(3, answer("A"))
    calls.at(10, hangup("A"))
    calls.at(1, new_call("B", orig="A"))
    assert calls.started() == {"in": 2}
    assert calls.ended() == {("in", "answered"): 1}


def test_voicemail_on_a_new_leg(calls: Scenario) -> None:
    calls.at(0, new_call("A", users=("Doc", "Marty")))
    calls.at(20, hangup("A", "forwarded"))
    calls.at(0.5, new_call("B", orig="A", users=("voicemail",)))
    calls.at(0.5, answer("B", user="voicemail"))
    assert calls.active() == {("in", "talking"): 1}
    calls.at(29, hangup("B"))
    calls.assert_ended("voicemail", wait=(1, 21.0), voicemail=(1, 29.0), person=(0, 0.0))


def test_voicemail_on_the_same_leg(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(20, answer("A", user="voicemail"))
    calls.at(15, hangup("A"))
    calls.assert_ended("voicemail", voicemail=(1, 15.0))


def test_voicemail_leg_hung_up_without_its_answer_is_voicemail(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(20, hangup("A", "forwarded"))
    calls.at(1, new_call("B", orig="A", users=("voicemail",)))
    calls.at(30, hangup("B"))
    calls.assert_ended("voicemail", wait=(0, 0.0))


def test_group_call_answered_by_one_member(calls: Scenario) -> None:
    calls.at(0, new_call("G", users=("Alice", "Bob", "Carol")))
    calls.at(6, answer("G", user="Bob"))
    calls.at(40, hangup("G"))
    calls.assert_ended("answered", wait=(1, 6.0))


def test_person_after_voicemail_counts_as_answered(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(5, answer("A", user="voicemail"))
    calls.at(5, new_call("B", orig="A", users=("Doc",)))
    calls.at(2, answer("B", user="Doc"))
    calls.at(10, hangup("A"))
    calls.at(10, hangup("B"))
    calls.assert_ended("answered", wait=(1, 5.0), person=(1, 27.0))


def test_lost_answer_with_normal_clearing_is_answered_without_times(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(50, hangup("A", "normalClearing"))
    calls.assert_ended("answered", wait=(0, 0.0), person=(0, 0.0))


def test_caller_hangs_up_while_forward_leg_rings(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(10, hangup("A", "forwarded"))
    calls.at(1, new_call("B", orig="A"))
    calls.at(9, hangup("B", "cancel"))
    calls.assert_ended("missed", wait=(1, 20.0))


def test_forwarded_leg_while_another_leg_rings_opens_no_grace(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(1, new_call("B", orig="A"))
    calls.at(5, hangup("A", "forwarded"))
    calls.at(5, hangup("B", "cancel"))
    assert calls.ended() == {("in", "missed"): 1}


def test_missing_hangup_expires(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(5, answer("A"))
    calls.sweep_after(EXPIRE_AFTER - 1)
    assert calls.ended() == {}
    calls.sweep_after(1)
    assert calls.ended() == {("in", "expired"): 1}
    assert calls.active() == {}
    assert calls.wait("in", "answered") == (0, 0.0)
    assert calls.duration("in", "person") == (0, 0.0)
    assert calls.tracker.open_calls == 0


def test_any_event_restarts_the_expiry_clock(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(EXPIRE_AFTER - 10, Dtmf(call_id="A", digits="1"))
    calls.sweep_after(20)
    assert calls.ended() == {}
    calls.sweep_after(EXPIRE_AFTER)
    assert calls.ended() == {("in", "expired"): 1}


def test_expiry_keeps_fresher_calls(calls: Scenario) -> None:
    calls.at(0, new_call("old"))
    calls.at(EXPIRE_AFTER / 2, new_call("new"))
    calls.sweep_after(EXPIRE_AFTER / 2)
    assert calls.ended() == {("in", "expired"): 1}
    assert calls.active() == {("in", "ringing"): 1}


def test_duplicates_are_unmatched_and_counted_once(calls: Scenario) -> None:
    assert calls.at(0, new_call("A")).matched
    assert not calls.at(0, new_call("A")).matched
    assert calls.at(3, answer("A")).matched
    assert not calls.at(0, answer("A")).matched
    assert calls.at(10, hangup("A")).matched
    assert not calls.at(0, hangup("A")).matched
    stats = calls.tracker.stats
    assert calls.started() == {"in": 1}
    assert calls.ended() == {("in", "answered"): 1}
    assert stats.unmatched == {"newCall": 1, "answer": 1, "hangup": 1}
    assert stats.hangups == {("in", "normalClearing"): 2}


def test_events_for_unknown_calls_change_no_call_statistics(calls: Scenario) -> None:
    assert not calls.at(0, answer("ghost")).matched
    assert not calls.at(0, hangup("ghost", "cancel")).matched
    assert not calls.at(0, Dtmf(call_id="ghost", digits="5")).matched
    stats = calls.tracker.stats
    assert calls.started() == {}
    assert calls.ended() == {}
    assert stats.unmatched == {"answer": 1, "hangup": 1, "dtmf": 1}
    assert stats.hangups == {("in", "cancel"): 1}
    assert stats.dtmf_events == 1


def test_answer_after_its_leg_hung_up_is_unmatched(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(1, new_call("B", orig="A"))
    calls.at(5, hangup("A", "cancel"))
    assert not calls.at(1, answer("A")).matched
    calls.at(1, hangup("B", "cancel"))
    assert calls.ended() == {("in", "missed"): 1}


def test_hangup_before_new_call_then_new_call_is_a_fresh_call(calls: Scenario) -> None:
    assert not calls.at(0, hangup("late", "cancel")).matched
    calls.at(1, new_call("late"))
    assert calls.active() == {("in", "ringing"): 1}


def test_clock_going_backwards_never_observes_negative_times(calls: Scenario) -> None:
    calls.at(0, new_call("A"))
    calls.at(-30, answer("A"))
    calls.at(-30, hangup("A"))
    assert calls.wait("in", "answered") == (1, 0.0)
    assert calls.duration("in", "person") == (1, 0.0)


def test_open_call_cap_evicts_the_stalest_call_as_expired(clock: FakeClock) -> None:
    tracker = CallTracker(new_statistics(), FORWARD_GRACE, EXPIRE_AFTER, max_open=3)
    calls = Scenario(tracker, clock)
    for call_id in ("A", "B", "C"):
        calls.at(1, new_call(call_id))
    calls.at(1, Dtmf(call_id="A", digits="1"))  # A is now fresher than B
    handled = calls.at(1, new_call("D"))
    assert [call.call_id for call in handled.ended] == ["B"]
    assert tracker.open_calls == 3
    assert tracker.stats.evicted == 1
    assert calls.ended() == {("in", "expired"): 1}
    assert calls.active() == {("in", "ringing"): 3}
