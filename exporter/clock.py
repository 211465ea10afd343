"""The exporter's clock: unix time read once at start, then advanced by a monotonic clock.

Waits, talk times, graces and expiry are differences of its readings, so a step of the wall
clock (NTP, a resumed virtual machine) moves none of them. Only a restart reads the wall clock
again; the recorded times of calls carried across it are unix times like its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SteadyClock:
    """Unix time that never steps: the wall clock at start plus the monotonic time since."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._offset = wall() - monotonic()

    def __call__(self) -> float:
        return self._offset + self._monotonic()

    def catch_up(self, at: float) -> float:
        """Read at least `at` from now on; return how many seconds the clock was moved ahead."""
        behind = at - self()
        if behind <= 0:
            return 0.0
        self._offset += behind
        return behind
