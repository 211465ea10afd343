"""Service level, abandons, unnamed answers and the longest wait, counted by the tracker."""

from __future__ import annotations

import pytest

from exporter.domain.events import Answer, Hangup, NewCall
from exporter.domain.labels import LabelConfig
from exporter.domain.service_level import ServiceTargets
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from tests.conftest import EXPIRE_AFTER, FORWARD_GRACE, START, FakeClock

HOTLINE = "4921100000001"
BACKOFFICE = "4921100000002"


def new_call(call_id: str, to: str = HOTLINE, direction: str = "in") -> NewCall:
    return NewCall(call_id=call_id, direction=direction, to_number=to, from_number="4915100000009")


def answer(call_id: str, user: str | None = "Doc", direction: str = "in") -> Answer:
    return Answer(call_id=call_id, direction=direction, user=user)


def hangup(call_id: str, cause: str = "normalClearing", direction: str = "in") -> Hangup:
    return Hangup(call_id=call_id, direction=direction, cause=cause)


@pytest.fixture
def tracker() -> CallTracker:
    tracker = CallTracker(
        new_statistics(),
        FORWARD_GRACE,
        EXPIRE_AFTER,
        targets=ServiceTargets(answer_within=20.0, short_abandon=5.0),
    )
    tracker.configure_labels(
        LabelConfig(
            lines={HOTLINE: "hotline", BACKOFFICE: "backoffice"},
            targets={"backoffice": {"answer_within": 60.0}},
        )
    )
    return tracker


def answered_after(tracker: CallTracker, clock: FakeClock, call_id: str, wait: float) -> None:
    tracker.handle(new_call(call_id), clock.now)
    tracker.handle(answer(call_id), clock.advance(wait))
    tracker.handle(hangup(call_id), clock.advance(30))


def missed_after(tracker: CallTracker, clock: FakeClock, call_id: str, wait: float) -> None:
    tracker.handle(new_call(call_id), clock.now)
    tracker.handle(hangup(call_id, "cancel"), clock.advance(wait))


def counts(tracker: CallTracker, line: str = "hotline") -> dict[str, int]:
    stats, key = tracker.stats, ("in", line)
    return {
        "offered": stats.offered[key],
        "in_target": stats.answered_in_target[key],
        "abandoned": stats.abandoned[key],
        "short": stats.short_abandoned[key],
    }


def test_answers_within_the_target_count_in_target_and_the_bound_is_inclusive(
    tracker: CallTracker, clock: FakeClock
) -> None:
    answered_after(tracker, clock, "A", 20.0)
    answered_after(tracker, clock, "B", 20.5)

    assert counts(tracker) == {"offered": 2, "in_target": 1, "abandoned": 0, "short": 0}


def test_a_short_abandon_is_not_offered_and_a_longer_miss_is_abandoned(
    tracker: CallTracker, clock: FakeClock
) -> None:
    missed_after(tracker, clock, "A", 4.9)
    missed_after(tracker, clock, "B", 5.0)

    assert counts(tracker) == {"offered": 1, "in_target": 0, "abandoned": 1, "short": 1}


@pytest.mark.parametrize("cause", ["busy", "noAnswer", "congestion", "forwarded"])
def test_other_unanswered_outcomes_are_offered_but_neither_answered_nor_abandoned(
    tracker: CallTracker, clock: FakeClock, cause: str
) -> None:
    tracker.handle(new_call("A"), clock.now)
    tracker.handle(hangup("A", cause), clock.advance(1))
    tracker.sweep(clock.advance(FORWARD_GRACE + 1))  # a forwarded call ends after its grace

    assert counts(tracker) == {"offered": 1, "in_target": 0, "abandoned": 0, "short": 0}


def test_voicemail_is_offered_and_not_answered(tracker: CallTracker, clock: FakeClock) -> None:
    tracker.handle(NewCall(call_id="A", direction="in", to_number=HOTLINE), clock.now)
    tracker.handle(Answer(call_id="A", direction="in", user="voicemail"), clock.advance(3))
    tracker.handle(hangup("A"), clock.advance(20))

    assert tracker.stats.calls_ended[("in", "voicemail", "hotline")] == 1
    assert counts(tracker) == {"offered": 1, "in_target": 0, "abandoned": 0, "short": 0}


def test_expired_calls_are_not_offered(tracker: CallTracker, clock: FakeClock) -> None:
    tracker.handle(new_call("A"), clock.now)
    tracker.sweep(clock.advance(EXPIRE_AFTER + 1))

    assert counts(tracker) == {"offered": 0, "in_target": 0, "abandoned": 0, "short": 0}


def test_a_line_with_its_own_target_uses_it(tracker: CallTracker, clock: FakeClock) -> None:
    tracker.handle(new_call("A", to=BACKOFFICE), clock.now)
    tracker.handle(answer("A"), clock.advance(45))
    tracker.handle(hangup("A"), clock.advance(30))

    assert counts(tracker, "backoffice")["in_target"] == 1


def test_outgoing_calls_count_for_no_service_level(tracker: CallTracker, clock: FakeClock) -> None:
    tracker.handle(NewCall(call_id="O", direction="out", from_number=HOTLINE), clock.now)
    tracker.handle(hangup("O", "cancel", direction="out"), clock.advance(1))

    assert not tracker.stats.offered
    assert not tracker.stats.short_abandoned


def test_an_answer_without_a_user_is_answered_by_an_unnamed_person(
    tracker: CallTracker, clock: FakeClock
) -> None:
    tracker.handle(new_call("A"), clock.now)
    tracker.handle(answer("A", user=None), clock.advance(3))
    tracker.handle(hangup("A"), clock.advance(40))
    answered_after(tracker, clock, "B", 3)

    stats = tracker.stats
    assert stats.calls_ended[("in", "answered", "hotline")] == 2
    assert stats.answered_unnamed[("in", "hotline")] == 1
    assert stats.duration[("in", "unnamed", "hotline")].count == 1
    assert stats.duration[("in", "person", "hotline")].count == 1


def test_the_longest_wait_is_the_oldest_call_still_ringing(
    tracker: CallTracker, clock: FakeClock
) -> None:
    assert tracker.read().ringing_since == {}
    tracker.handle(new_call("A"), clock.now)
    tracker.handle(new_call("B"), clock.advance(5))
    tracker.handle(new_call("C", to=BACKOFFICE), clock.advance(5))
    assert tracker.read().ringing_since == {
        ("in", "hotline"): START,
        ("in", "backoffice"): START + 10,
    }

    tracker.handle(answer("A"), clock.advance(1))
    tracker.handle(hangup("C", "cancel"), clock.advance(1))
    assert tracker.read().ringing_since == {
        ("in", "hotline"): START + 5,
        ("in", "backoffice"): 0.0,
    }


def test_the_longest_wait_survives_a_restore(tracker: CallTracker, clock: FakeClock) -> None:
    tracker.handle(new_call("A"), clock.now)
    tracker.handle(new_call("B"), clock.advance(5))
    state = tracker.export_state()

    restored = CallTracker(new_statistics(), FORWARD_GRACE, EXPIRE_AFTER)
    restored.configure_labels(LabelConfig(lines={HOTLINE: "hotline"}))
    restored.restore_state(state)

    assert restored.read().ringing_since == {("in", "hotline"): START}
