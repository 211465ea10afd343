"""Counters and histograms as plain domain state, free of HTTP and Prometheus."""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


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

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, count) pairs ending with +Inf, as Prometheus exposes them."""
        pairs = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass
class Statistics:
    """Everything the exporter counts; keys are label-value tuples in metric label order."""

    wait_buckets: tuple[float, ...]
    duration_buckets: tuple[float, ...]
    request_buckets: tuple[float, ...]
    calls_started: Counter[str] = field(default_factory=Counter)
    calls_ended: Counter[tuple[str, str]] = field(default_factory=Counter)
    wait: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    duration: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    hangups: Counter[tuple[str, str]] = field(default_factory=Counter)
    dtmf_events: int = 0
    unmatched: Counter[str] = field(default_factory=Counter)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    request_duration: Histogram = field(init=False)
    last_received: float = 0.0
    evicted: int = 0

    def __post_init__(self) -> None:
        self.request_duration = Histogram(self.request_buckets)

    def observe_wait(self, direction: str, outcome: str, seconds: float) -> None:
        """Record how long a call waited for its first answer or its end."""
        key = (direction, outcome)
        histogram = self.wait.get(key)
        if histogram is None:
            histogram = self.wait[key] = Histogram(self.wait_buckets)
        histogram.observe(seconds)

    def observe_duration(self, direction: str, answered_by: str, seconds: float) -> None:
        """Record how long an answered call lasted."""
        key = (direction, answered_by)
        histogram = self.duration.get(key)
        if histogram is None:
            histogram = self.duration[key] = Histogram(self.duration_buckets)
        histogram.observe(seconds)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data; `load_dict` reads it back."""
        return {
            "calls_started": _pairs(self.calls_started),
            "calls_ended": _pairs(self.calls_ended),
            "hangups": _pairs(self.hangups),
            "unmatched": _pairs(self.unmatched),
            "requests": _pairs(self.requests),
            "rejected": _pairs(self.rejected),
            "wait": [[*key, h.counts, h.total] for key, h in self.wait.items()],
            "duration": [[*key, h.counts, h.total] for key, h in self.duration.items()],
            "buckets": [self.wait_buckets, self.duration_buckets],
            "dtmf_events": self.dtmf_events,
            "last_received": self.last_received,
            "evicted": self.evicted,
        }

    def load_dict(self, data: dict[str, Any]) -> None:
        """Take over the values of `to_dict`; histograms with other buckets are dropped."""
        self.calls_started = Counter(dict(data["calls_started"]))
        self.calls_ended = Counter({tuple(key): n for key, n in data["calls_ended"]})
        self.hangups = Counter({tuple(key): n for key, n in data["hangups"]})
        self.unmatched = Counter(dict(data["unmatched"]))
        self.requests = Counter({tuple(key): n for key, n in data["requests"]})
        self.rejected = Counter(dict(data["rejected"]))
        self.dtmf_events = data["dtmf_events"]
        self.last_received = data["last_received"]
        self.evicted = data["evicted"]
        # Request durations are the process's own, like its CPU time: they start at zero.
        self.request_duration = Histogram(self.request_buckets)
        wait_bounds, duration_bounds = (tuple(bounds) for bounds in data["buckets"])
        self.wait, self.duration = {}, {}
        if wait_bounds == self.wait_buckets:
            self.wait = _histograms(data["wait"], self.wait_buckets)
        if duration_bounds == self.duration_buckets:
            self.duration = _histograms(data["duration"], self.duration_buckets)

    def copy(self) -> Statistics:
        """A copy that later updates do not touch."""
        clone = dataclasses.replace(
            self,
            calls_started=self.calls_started.copy(),
            calls_ended=self.calls_ended.copy(),
            wait={key: histogram.copy() for key, histogram in self.wait.items()},
            duration={key: histogram.copy() for key, histogram in self.duration.items()},
            hangups=self.hangups.copy(),
            unmatched=self.unmatched.copy(),
            requests=self.requests.copy(),
            rejected=self.rejected.copy(),
        )
        clone.request_duration = self.request_duration.copy()
        return clone


def _pairs(counter: Counter[Any]) -> list[list[Any]]:
    return [[key, n] for key, n in counter.items()]


def _histogram(bounds: tuple[float, ...], counts: list[int], total: float) -> Histogram:
    histogram = Histogram(bounds)
    histogram.counts[:] = counts
    histogram.total = total
    return histogram


def _histograms(
    rows: list[list[Any]], bounds: tuple[float, ...]
) -> dict[tuple[str, str], Histogram]:
    return {
        (first, second): _histogram(bounds, counts, total) for first, second, counts, total in rows
    }
