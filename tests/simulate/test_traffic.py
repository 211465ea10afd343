"""Planned traffic: SIPGATE.md's sequences, reproducible, with the outcomes the tracker records."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from urllib.parse import parse_qs

from exporter.domain.callbacks import CALLED_AGAIN, CALLED_BACK, OWED_OUTCOMES
from exporter.domain.calls import ANSWERED, EXPIRED, MISSED
from exporter.domain.events import IN, NewCall, parse_event
from exporter.domain.service_level import DEFAULT_SHORT_ABANDON, DEFAULT_TARGET
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from exporter.simulate.traffic import PlannedCall, TrafficPlanner, TrafficProfile

GRACE = 10.0
EXPIRE = 4 * 3600.0
BUSY_PROFILE = TrafficProfile(
    calls_per_minute=30,
    forward_probability=0.3,
    transfer_probability=0.3,
    group_probability=0.5,
    lost_followup_probability=0.05,
)


def plan(count: int, seed: int = 3, profile: TrafficProfile = BUSY_PROFILE) -> list[PlannedCall]:
    return list(islice(TrafficPlanner(profile, seed), count))


def fields(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode(), keep_blank_values=True)


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    assert plan(50, seed=9) == plan(50, seed=9)
    assert plan(50, seed=9) != plan(50, seed=10)


def test_every_body_parses_and_every_call_starts_with_new_call() -> None:
    for call in plan(500):
        first = parse_event(call.events[0].body)
        assert isinstance(first, NewCall)
        assert first.orig_call_id == first.call_id
        times = [event.at for event in call.events]
        assert times == sorted(times)
        for event in call.events:
            assert (
                parse_event(event.body)
                .__class__.__name__.lower()
                .startswith(event.name[:3].lower())
            )


def test_forwards_and_voicemail_follow_the_documented_sequence() -> None:
    shapes: Counter[str] = Counter()
    for call in plan(1500):
        names = [event.name for event in call.events]
        parsed = [fields(event.body) for event in call.events]
        if names[:3] == ["newCall", "hangup", "newCall"]:
            assert parsed[1]["cause"] == ["forwarded"]
            assert parsed[2]["origCallId"] == parsed[0]["callId"]
            voicemail = parsed[2]["user[]"] == ["voicemail"]
            shapes["voicemail" if voicemail else "forward"] += 1
            assert call.outcome == ("voicemail" if voicemail else "answered")
        elif names == ["newCall", "answer", "newCall", "answer", "hangup", "hangup"]:
            assert parsed[4]["callId"] == parsed[0]["callId"]
            assert parsed[5]["callId"] == parsed[2]["callId"]
            shapes["transfer"] += 1
        if len(parsed[0].get("user[]", [])) > 1:
            shapes["group"] += 1
        if parsed[0]["from"] == ["anonymous"]:
            shapes["anonymous"] += 1
    assert min(shapes.values()) > 10, shapes
    assert set(shapes) == {"voicemail", "forward", "transfer", "group", "anonymous"}


def feed(calls: list[PlannedCall]) -> CallTracker:
    """A tracker that saw every event of the calls at its planned time, swept to the end."""
    events = sorted(
        ((event.at, index, event) for index, call in enumerate(calls) for event in call.events),
        key=lambda item: (item[0], item[1]),
    )
    tracker = CallTracker(new_statistics(), forward_grace=GRACE, expire_after=EXPIRE)
    for at, _, event in events:
        tracker.sweep(at)
        tracker.handle(parse_event(event.body), at)
    tracker.sweep(events[-1][0] + EXPIRE + GRACE)
    return tracker


def test_tracker_records_exactly_the_planned_outcomes() -> None:
    calls = plan(3000, seed=11)
    tracker = feed(calls)
    planned = Counter((call.direction, call.outcome) for call in calls)
    recorded = {key[:2]: n for key, n in tracker.stats.calls_ended.items() if n}
    assert recorded == dict(planned)
    assert sum(tracker.stats.unmatched.values()) == 0


# --- the call-centre cases: short abandons, slow and unnamed answers, callbacks -----------------


def wait_of(call: PlannedCall) -> float:
    """The wait the exporter measures: to the first answer, or to the last hangup."""
    answers = [event.at for event in call.events if event.name == "answer"]
    end = answers[0] if answers else call.events[-1].at
    return end - call.events[0].at


def is_unnamed(call: PlannedCall) -> bool:
    """An incoming call a person answered, but no answer named its user."""
    answers = [fields(event.body) for event in call.events if event.name == "answer"]
    return call.outcome == ANSWERED and all("user" not in answer for answer in answers)


def number(call: PlannedCall, field: str) -> str:
    return fields(call.events[0].body)[field][0]


def test_plan_has_every_service_level_case() -> None:
    calls = [call for call in plan(3000, seed=5, profile=TrafficProfile()) if call.direction == IN]
    missed = [wait_of(call) for call in calls if call.outcome == MISSED]
    answered = [wait_of(call) for call in calls if call.outcome == ANSWERED]
    short = sum(wait < DEFAULT_SHORT_ABANDON for wait in missed)
    slow = sum(wait > DEFAULT_TARGET for wait in answered)
    assert 0.2 < short / len(missed) < 0.5, (short, len(missed))
    assert 0.1 < slow / len(answered) < 0.35, (slow, len(answered))
    assert 0.05 < sum(map(is_unnamed, calls)) / len(answered) < 0.15


def test_missed_callers_call_again_and_are_called_back() -> None:
    missed_at: dict[str, float] = {}
    results: Counter[str] = Counter()
    for call in plan(3000, seed=5, profile=TrafficProfile()):
        if call.direction == IN:
            caller = number(call, "from")
            if call.owes:
                assert caller != "anonymous"
                assert call.outcome in OWED_OUTCOMES
                assert caller not in missed_at, "one debt per number"
                missed_at[caller] = call.events[-1].at
            if call.settles == (CALLED_AGAIN,):
                assert call.outcome == ANSWERED
                assert missed_at.pop(caller) < call.events[0].at
        elif call.settles:
            assert call.settles == (CALLED_BACK,)
            assert call.outcome == ANSWERED
            assert missed_at.pop(number(call, "to")) < call.events[0].at
        results.update(call.settles)
    assert results[CALLED_AGAIN] > 50, results
    assert results[CALLED_BACK] > 50, results
    assert missed_at, "some callers are still owed a callback at the end"


def test_tracker_counts_the_planned_service_level_and_callbacks() -> None:
    calls = plan(3000, seed=7, profile=TrafficProfile(lost_followup_probability=0.02))
    tracker = feed(calls)
    stats = tracker.stats
    incoming = [call for call in calls if call.direction == IN and call.outcome != EXPIRED]
    short = [c for c in incoming if c.outcome == MISSED and wait_of(c) < DEFAULT_SHORT_ABANDON]
    in_target = [c for c in incoming if c.outcome == ANSWERED and wait_of(c) <= DEFAULT_TARGET]
    assert sum(stats.short_abandoned.values()) == len(short) > 0
    assert sum(stats.offered.values()) == len(incoming) - len(short)
    assert sum(stats.abandoned.values()) == sum(c.outcome == MISSED for c in incoming) - len(short)
    assert sum(stats.answered_in_target.values()) == len(in_target)
    assert sum(stats.answered_unnamed.values()) == sum(map(is_unnamed, incoming)) > 0

    settled = Counter(result for call in calls for result in call.settles)
    recorded: Counter[str] = Counter()
    for (_, result), count in stats.callbacks.items():
        recorded[result] += count
    assert +recorded == settled
    owed = sum(call.owes for call in calls) - sum(settled.values())
    assert sum(tracker.read().callbacks_pending.values()) == owed > 0
