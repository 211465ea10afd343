"""Randomised event streams: the active-call invariant holds and nothing is counted twice."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.events import DIRECTIONS, KNOWN_CAUSES, Answer, Dtmf, Event, Hangup, NewCall
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics

CALL_IDS = [f"c{i}" for i in range(8)]
GRACE = 10.0
EXPIRE = 300.0

call_ids = st.sampled_from(CALL_IDS)
directions = st.sampled_from(DIRECTIONS)
new_calls = st.builds(
    NewCall,
    call_id=call_ids,
    direction=directions,
    orig_call_id=st.none() | call_ids,
    users=st.sampled_from([("Doc",), ("voicemail",), ("Doc", "Marty"), ()]),
)
answers = st.builds(
    Answer, call_id=call_ids, direction=directions, user=st.sampled_from([None, "Doc", "voicemail"])
)
hangups = st.builds(
    Hangup,
    call_id=call_ids,
    direction=directions,
    cause=st.sampled_from([*KNOWN_CAUSES, "mystery"]),
)
dtmfs = st.builds(Dtmf, call_id=call_ids, digits=st.sampled_from(["", "0", "123"]))
events = st.one_of(new_calls, answers, hangups, dtmfs)
# A step is an event, or a pause in seconds after which the sweeper runs.
pauses = st.sampled_from([0.0, 0.5, 1.0, 5.0, GRACE, EXPIRE / 2, EXPIRE + 1])
steps = st.lists(st.one_of(events, pauses), min_size=1, max_size=300)


def check_invariant(tracker: CallTracker) -> None:
    reading = tracker.read()
    stats, active = reading.stats, reading.active
    for direction in DIRECTIONS:
        started = _total(stats.calls_started, direction)
        ended = _total(stats.calls_ended, direction)
        in_progress = _total(active, direction)
        assert started - ended == in_progress, (direction, started, ended, dict(active))
    assert all(count >= 0 for count in active.values())
    assert sum(active.values()) == tracker.open_calls
    for key, histogram in stats.wait.items():
        assert histogram.count <= stats.calls_ended[key]


def _total(counts: Mapping[Any, int], direction: str) -> int:
    """The sum over all other labels of one direction's counts."""
    return sum(count for key, count in counts.items() if key[0] == direction)


def replay(steps: Sequence[Any], duplicate: bool = False) -> CallTracker:
    tracker = CallTracker(new_statistics(), forward_grace=GRACE, expire_after=EXPIRE)
    now = 0.0
    for step in steps:
        if isinstance(step, float):
            now += step
            tracker.sweep(now)
        else:
            event: Event = step
            for _ in range(2 if duplicate else 1):
                tracker.handle(event, now)
                check_invariant(tracker)
        check_invariant(tracker)
    return tracker


def call_statistics(tracker: CallTracker) -> dict[str, Any]:
    stats = tracker.stats
    return {
        "started": dict(stats.calls_started),
        "ended": {key: n for key, n in stats.calls_ended.items() if n},
        "wait": {key: (h.counts, h.total) for key, h in stats.wait.items()},
        "duration": {key: (h.counts, h.total) for key, h in stats.duration.items()},
        "open": tracker.open_calls,
    }


@settings(max_examples=300, deadline=None)
@given(steps)
def test_invariant_holds_after_every_step(stream: list[Any]) -> None:
    replay(stream)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_repeated_events_never_change_call_statistics(stream: list[Any]) -> None:
    once = replay(stream)
    twice = replay(stream, duplicate=True)
    assert call_statistics(twice) == call_statistics(once)
    # A repeated newCall, answer or hangup is unmatched; dtmf may legitimately repeat.
    repeats = sum(1 for step in stream if isinstance(step, NewCall | Answer | Hangup))

    def unmatched(tracker: CallTracker) -> int:
        return sum(n for event, n in tracker.stats.unmatched.items() if event != "dtmf")

    assert unmatched(twice) == unmatched(once) + repeats


@settings(max_examples=100, deadline=None)
@given(steps)
def test_every_call_ends_once_time_runs_out(stream: list[Any]) -> None:
    tracker = replay([*stream, EXPIRE + GRACE + 1.0])
    stats = tracker.stats
    assert tracker.open_calls == 0
    for direction in DIRECTIONS:
        assert _total(stats.calls_ended, direction) == _total(stats.calls_started, direction)


def random_stream(rng: random.Random, length: int) -> list[Any]:
    """A long stream shaped like real traffic: mostly whole calls, interleaved, some faults."""
    stream: list[Any] = []
    for _ in range(length):
        call_id = f"c{rng.randrange(40)}"
        direction = rng.choice(DIRECTIONS)
        roll = rng.random()
        if roll < 0.3:
            orig = rng.choice([None, call_id, f"c{rng.randrange(40)}"])
            users = rng.choice([("Doc",), ("voicemail",), ("Doc", "Marty")])
            stream.append(NewCall(call_id, direction, orig_call_id=orig, users=users))
        elif roll < 0.5:
            stream.append(Answer(call_id, direction, user=rng.choice([None, "Doc", "voicemail"])))
        elif roll < 0.8:
            cause = rng.choice([*KNOWN_CAUSES, "mystery"])
            stream.append(Hangup(call_id, direction, cause=cause))
        elif roll < 0.85:
            stream.append(Dtmf(call_id, digits="1"))
        else:
            stream.append(rng.choice([0.1, 1.0, 3.0, GRACE, EXPIRE / 3, EXPIRE + 1]))
    return stream


@pytest.mark.parametrize("seed", range(5))
def test_invariant_holds_on_long_streams(seed: int) -> None:
    stream = random_stream(random.Random(seed), 5000)  # noqa: S311 - reproducible, not secret
    tracker = replay(stream)
    assert sum(tracker.stats.calls_started.values()) > 100
    assert sum(tracker.stats.calls_ended.values()) > 100
