"""Counters and histograms as plain domain state, free of HTTP and Prometheus."""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final


class Histogram:
    """Cumulative-ready bucket counts for observations, with their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation in the first bucket whose upper bound holds it."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """Number of observations."""
        return sum(self.counts)

    def copy(self) -> Histogram:
        """An independent copy."""
        clone = Histogram.__new__(Histogram)
        clone.bounds, clone.counts, clone.total = self.bounds, self.counts.copy(), self.total
        return clone

    def add(self, other: Histogram) -> None:
        """Add the observations of `other`, which has the same bounds."""
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        self.counts = [
            mine + theirs for mine, theirs in zip(self.counts, other.counts, strict=True)
        ]
        self.total += other.total

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, count) pairs ending with +Inf, as Prometheus exposes them."""
        pairs = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


# Counters and the width of their label tuples (0: a plain string key). Snapshots written
# before the `line` label existed have narrower keys; those calls belong to line `other`.
_COUNTERS: Final = {
    "calls_started": 2,
    "calls_ended": 3,
    "hangups": 2,
    "unmatched": 0,
    "overflow": 0,
    "team_answered": 0,
    "team_outgoing": 0,
    "user_answered": 0,
    "user_outgoing": 0,
    "offered": 2,
    "answered_in_target": 2,
    "abandoned": 2,
    "short_abandoned": 2,
    "answered_unnamed": 2,
    "callbacks": 2,
}
# Sums of seconds, by team or user.
_SUMS: Final = ("team_talk", "user_talk")
_KEY_WIDTH: Final = 3  # of the wait and duration histograms: (direction, outcome, line)


@dataclass
class Statistics:
    """Everything the exporter counts; keys are label-value tuples in metric label order."""

    wait_buckets: tuple[float, ...]
    duration_buckets: tuple[float, ...]
    calls_started: Counter[tuple[str, str]] = field(default_factory=Counter)
    calls_ended: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    wait: dict[tuple[str, str, str], Histogram] = field(default_factory=dict)
    duration: dict[tuple[str, str, str], Histogram] = field(default_factory=dict)
    hangups: Counter[tuple[str, str]] = field(default_factory=Counter)
    dtmf_events: int = 0
    unmatched: Counter[str] = field(default_factory=Counter)
    last_received: float = 0.0
    evicted: int = 0
    overflow: Counter[str] = field(default_factory=Counter)
    team_answered: Counter[str] = field(default_factory=Counter)
    team_talk: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    team_outgoing: Counter[str] = field(default_factory=Counter)
    user_answered: Counter[str] = field(default_factory=Counter)
    user_talk: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    user_outgoing: Counter[str] = field(default_factory=Counter)
    # Incoming calls by (direction, line), as the service level counts them.
    offered: Counter[tuple[str, str]] = field(default_factory=Counter)
    answered_in_target: Counter[tuple[str, str]] = field(default_factory=Counter)
    abandoned: Counter[tuple[str, str]] = field(default_factory=Counter)
    short_abandoned: Counter[tuple[str, str]] = field(default_factory=Counter)
    answered_unnamed: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Callback debts closed, by (line, result); their delays by line; those dropped at the cap.
    callbacks: Counter[tuple[str, str]] = field(default_factory=Counter)
    callback_delay: dict[str, Histogram] = field(default_factory=dict)
    callbacks_dropped: int = 0
    callback_delay_buckets: tuple[float, ...] = ()

    def zeroed(self) -> Statistics:
        """Empty statistics with the same buckets."""
        return Statistics(
            self.wait_buckets,
            self.duration_buckets,
            callback_delay_buckets=self.callback_delay_buckets,
        )

    def observe_wait(self, key: tuple[str, str, str], seconds: float) -> None:
        """Record how long a call (direction, outcome, line) waited."""
        histogram = self.wait.get(key)
        if histogram is None:
            histogram = self.wait[key] = Histogram(self.wait_buckets)
        histogram.observe(seconds)

    def observe_duration(self, key: tuple[str, str, str], seconds: float) -> None:
        """Record how long an answered call (direction, answered_by, line) lasted."""
        histogram = self.duration.get(key)
        if histogram is None:
            histogram = self.duration[key] = Histogram(self.duration_buckets)
        histogram.observe(seconds)

    def observe_callback_delay(self, line: str, seconds: float) -> None:
        """Record how long a caller waited for a callback or a second call that was answered."""
        histogram = self.callback_delay.get(line)
        if histogram is None:
            histogram = self.callback_delay[line] = Histogram(self.callback_delay_buckets)
        histogram.observe(seconds)

    def count_answered(self, team: str, user: str | None, talk_seconds: float) -> None:
        """Credit an answered incoming call to the team and user who took it."""
        self.team_answered[team] += 1
        self.team_talk[team] += talk_seconds
        if user is not None:
            self.user_answered[user] += 1
            self.user_talk[user] += talk_seconds

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data that later updates do not touch; `load_dict` reads it back."""
        data: dict[str, Any] = {
            name: [[key, n] for key, n in getattr(self, name).items()]
            for name in (*_COUNTERS, *_SUMS)
        }
        data.update(
            wait=[[*key, h.counts.copy(), h.total] for key, h in self.wait.items()],
            duration=[[*key, h.counts.copy(), h.total] for key, h in self.duration.items()],
            buckets=[self.wait_buckets, self.duration_buckets],
            callback_delay=[
                [key, h.counts.copy(), h.total] for key, h in self.callback_delay.items()
            ],
            callback_delay_buckets=self.callback_delay_buckets,
            dtmf_events=self.dtmf_events,
            last_received=self.last_received,
            evicted=self.evicted,
            callbacks_dropped=self.callbacks_dropped,
        )
        return data

    def load_dict(self, data: dict[str, Any]) -> None:
        """Take over the values of `to_dict`; histograms with other buckets are dropped."""
        for name, width in _COUNTERS.items():
            rows = data.get(name, [])
            setattr(self, name, Counter({_key(key, width): n for key, n in rows}))
        for name in _SUMS:
            setattr(self, name, defaultdict(float, dict(data.get(name, []))))
        self.dtmf_events = data["dtmf_events"]
        self.last_received = data["last_received"]
        self.evicted = data["evicted"]
        self.callbacks_dropped = data.get("callbacks_dropped", 0)
        self.callback_delay = {}
        if tuple(data.get("callback_delay_buckets", ())) == self.callback_delay_buckets:
            rows = data.get("callback_delay", [])
            self.callback_delay = {
                line: _histogram(counts, total, self.callback_delay_buckets)
                for line, counts, total in rows
            }
        wait_bounds, duration_bounds = (tuple(bounds) for bounds in data["buckets"])
        self.wait, self.duration = {}, {}
        if wait_bounds == self.wait_buckets:
            self.wait = _histograms(data["wait"], self.wait_buckets)
        if duration_bounds == self.duration_buckets:
            self.duration = _histograms(data["duration"], self.duration_buckets)

    def add(self, other: Statistics) -> None:
        """Add the counts of `other`, whose histograms have the same buckets; take the later
        `last_received`."""
        for name in (*_COUNTERS, *_SUMS):
            mine = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine[key] += value
        for name in ("wait", "duration", "callback_delay"):
            mine = getattr(self, name)
            for key, histogram in getattr(other, name).items():
                if key in mine:
                    mine[key].add(histogram)
                else:
                    mine[key] = histogram.copy()
        self.dtmf_events += other.dtmf_events
        self.evicted += other.evicted
        self.callbacks_dropped += other.callbacks_dropped
        self.last_received = max(self.last_received, other.last_received)

    def copy(self) -> Statistics:
        """A copy that later updates do not touch."""
        counters = {name: getattr(self, name).copy() for name in (*_COUNTERS, *_SUMS)}
        return dataclasses.replace(
            self,
            wait={key: histogram.copy() for key, histogram in self.wait.items()},
            duration={key: histogram.copy() for key, histogram in self.duration.items()},
            callback_delay={key: h.copy() for key, h in self.callback_delay.items()},
            **counters,
        )


def _key(key: str | list[str], width: int) -> Any:
    if width == 0:
        return key
    parts = (key,) if isinstance(key, str) else tuple(key)
    return parts + ("other",) * (width - len(parts))


def _histograms(rows: list[list[Any]], bounds: tuple[float, ...]) -> dict[Any, Histogram]:
    return {
        _key(key, _KEY_WIDTH): _histogram(counts, total, bounds) for *key, counts, total in rows
    }


def _histogram(counts: list[int], total: float, bounds: tuple[float, ...]) -> Histogram:
    histogram = Histogram(bounds)
    histogram.counts[:] = counts
    histogram.total = total
    return histogram
