"""The steady clock: unix time at start, advanced only by the monotonic clock."""

from __future__ import annotations

from exporter.clock import SteadyClock


class Ticks:
    """A settable stand-in for time.time or time.monotonic."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_it_reads_the_wall_clock_at_start_and_then_follows_the_monotonic_one() -> None:
    wall, monotonic = Ticks(1_800_000_000.0), Ticks(50.0)
    clock = SteadyClock(wall, monotonic)
    assert clock() == 1_800_000_000.0

    wall.now -= 3600  # a step back
    monotonic.now += 2.5
    assert clock() == 1_800_000_002.5


def test_catching_up_moves_it_ahead_only() -> None:
    monotonic = Ticks(0.0)
    clock = SteadyClock(Ticks(1000.0), monotonic)

    assert clock.catch_up(900.0) == 0.0
    assert clock() == 1000.0
    assert clock.catch_up(1300.0) == 300.0
    assert clock() == 1300.0
    monotonic.now += 1
    assert clock() == 1301.0
