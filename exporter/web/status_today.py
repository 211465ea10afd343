"""Counts since local midnight, or since the exporter started when that was later.

The totals the exporter keeps run since its state began. "Today" is their difference from the
totals remembered at the start and again at each local midnight: the sweeper looks about once a
second, so an event counts for the day it arrived in, give or take that second.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

Totals = Counter[str]


def midnight(now: float, zone: tzinfo | None = None, days: int = 0) -> float:
    """The unix time of the local midnight that began `now`'s day, `days` later.

    Local means in `zone`, or in the system's time zone when it is None.
    """
    day = datetime.fromtimestamp(now, zone).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


class Today:
    """Totals counted since `since`: the start, or the last local midnight after it."""

    def __init__(self, now: float, totals: Totals, zone: tzinfo | None = None) -> None:
        self.started = now
        self._zone = zone
        self._lock = threading.Lock()
        self._since = now
        self._baseline = totals
        self._next = midnight(now, zone, days=1)

    @property
    def since(self) -> float:
        """When today's counting began."""
        return self._since

    def roll(self, now: float, totals: Callable[[], Totals]) -> None:
        """Start a new day if `now` is past midnight; `totals` is read only then."""
        with self._lock:
            if now < self._next:
                return
            self._since = midnight(now, self._zone)
            self._baseline = totals()
            self._next = midnight(now, self._zone, days=1)

    def counts(self, now: float, totals: Totals) -> Totals:
        """What `totals` counted today; `totals` must have been read at `now`."""
        self.roll(now, lambda: totals)
        with self._lock:
            return totals - self._baseline
