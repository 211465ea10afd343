"""Whether a store can write now: failed writes counted, and logged once per episode.

An episode starts with the first failed write of a part (the journal or snapshots of a state
file, or the shared database) and ends with the next write of that part that works; a full disk
that is freed again, or a database that answers again, ends it by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from exporter.errors import StateError

log = logging.getLogger(__name__)

JOURNAL: Final = "journal"
SNAPSHOT: Final = "snapshot"
DATABASE: Final = "database"
PARTS: Final = (JOURNAL, SNAPSHOT)  # of the state files
# Parts whose failure refuses events.
_REFUSING: Final = (JOURNAL, DATABASE)

# What a failing part means for the events, said when an episode starts.
_CONSEQUENCES: Final = {
    JOURNAL: "events are refused with 500 until it can be written again",
    SNAPSHOT: "events are still journaled; the snapshot is tried again at the next interval",
    DATABASE: "events are refused with 503 until it answers again",
}


@dataclass(frozen=True, slots=True)
class _Episode:
    error: StateError
    since: float
    errors_before: int


class StoreHealth:
    """Failed writes by part, and the episode of each part that is failing now."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, parts: tuple[str, ...] = PARTS
    ) -> None:
        self.parts = parts
        self._clock = clock
        self._lock = threading.Lock()
        self._episodes: dict[str, _Episode] = {}
        self._errors = dict.fromkeys(parts, 0)

    def is_failing(self, part: str) -> bool:
        """Whether writes of `part` are failing now."""
        return part in self._episodes

    def failed(self, part: str, error: StateError) -> None:
        """Count a failed write of `part`; log it when it starts an episode."""
        with self._lock:
            started = part not in self._episodes
            if started:
                self._episodes[part] = _Episode(error, self._clock(), self._errors[part])
            self._errors[part] += 1
        if started:
            log.warning("%s; %s", error, _CONSEQUENCES[part])

    def errors(self, part: str) -> int:
        """Failed writes of `part` so far; read before a write, to pass to `worked`."""
        return self._errors[part]

    def worked(self, part: str, errors_before: int | None = None) -> None:
        """A write of `part` worked: end its episode, if one goes on, unless another write
        failed since `errors_before` was read (that one began later)."""
        if part not in self._episodes:  # the common case, without the lock
            return
        with self._lock:
            if errors_before is not None and self._errors[part] != errors_before:
                return
            episode = self._episodes.pop(part, None)
            failed = self._errors[part] - episode.errors_before if episode else 0
        if episode is not None:
            log.info(
                "the %s can be written again, after %.0fs and %d failed writes",
                part,
                self._clock() - episode.since,
                failed,
            )

    def problem(self) -> str | None:
        """Why events are refused now, or None while they can be kept."""
        for part in _REFUSING:
            episode = self._episodes.get(part)
            if episode is not None:
                return str(episode.error)
        return None

    def write_errors(self) -> dict[str, int]:
        """Failed writes so far, by part."""
        with self._lock:
            return dict(self._errors)
