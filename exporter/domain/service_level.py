"""Service level: which ended incoming calls were offered, answered in target, or abandoned."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from exporter.domain.calls import ANSWERED, EXPIRED, MISSED
from exporter.domain.statistics import Statistics

DEFAULT_TARGET: Final = 20.0
DEFAULT_SHORT_ABANDON: Final = 5.0


@dataclass(frozen=True, slots=True)
class ServiceTargets:
    """A line's thresholds, in seconds.

    `answer_within`: an answer after at most this wait counts in target.
    `short_abandon`: a missed call shorter than this is a caller who hung up at once.
    """

    answer_within: float = DEFAULT_TARGET
    short_abandon: float = DEFAULT_SHORT_ABANDON


class TargetsByLine:
    """The thresholds of each line: the defaults, or what the configuration file sets for it."""

    def __init__(
        self, default: ServiceTargets, overrides: Mapping[str, Mapping[str, float]]
    ) -> None:
        self.default = default
        self._by_line = {
            line: dataclasses.replace(default, **values) for line, values in overrides.items()
        }

    def __call__(self, line: str) -> ServiceTargets:
        return self._by_line.get(line, self.default)


def count_service_level(
    stats: Statistics,
    key: tuple[str, str],
    outcome: str,
    wait: float | None,
    targets: ServiceTargets,
) -> None:
    """Count an ended incoming call, keyed (direction, line), towards its line's service level.

    Offered: every outcome but `expired`, short abandons left out. An answer whose time was
    lost (no `answer` event) is offered and answered, but not in target: its wait is unknown.
    """
    if outcome == EXPIRED:
        return
    if outcome == MISSED and wait is not None and wait < targets.short_abandon:
        stats.short_abandoned[key] += 1
        return
    stats.offered[key] += 1
    if outcome == MISSED:
        stats.abandoned[key] += 1
    elif outcome == ANSWERED and wait is not None and wait <= targets.answer_within:
        stats.answered_in_target[key] += 1
