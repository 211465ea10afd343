"""Planned traffic: SIPGATE.md's sequences, reproducible, with the outcomes the tracker records."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from urllib.parse import parse_qs

from exporter.domain.events import NewCall, parse_event
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


def test_tracker_records_exactly_the_planned_outcomes() -> None:
    calls = plan(3000, seed=11)
    events = sorted(
        ((event.at, index, event) for index, call in enumerate(calls) for event in call.events),
        key=lambda item: (item[0], item[1]),
    )
    tracker = CallTracker(new_statistics(), forward_grace=GRACE, expire_after=EXPIRE)
    for at, _, event in events:
        tracker.sweep(at)
        tracker.handle(parse_event(event.body), at)
    tracker.sweep(events[-1][0] + EXPIRE + GRACE)
    planned = Counter((call.direction, call.outcome) for call in calls)
    recorded = {key[:2]: n for key, n in tracker.stats.calls_ended.items() if n}
    assert recorded == dict(planned)
    assert sum(tracker.stats.unmatched.values()) == 0
