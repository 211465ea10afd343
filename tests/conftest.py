"""Shared fixtures: an injected clock and a fresh call tracker."""

from __future__ import annotations

import pytest

from exporter.calls import CallTracker
from exporter.metrics import new_statistics

START = 1_800_000_000.0
FORWARD_GRACE = 10.0
EXPIRE_AFTER = 4 * 3600.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward and return the new time."""
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracker() -> CallTracker:
    return CallTracker(new_statistics(), forward_grace=FORWARD_GRACE, expire_after=EXPIRE_AFTER)
