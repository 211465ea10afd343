"""Where relay mode keeps each call's follow-up URLs from its newCall until its hangup."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from exporter.relay.reply import FollowUps


class FollowUpMemory(Protocol):
    """The follow-up URLs of calls in progress, by call id; thread-safe. A shared memory may
    raise StateError when it cannot be reached."""

    def __len__(self) -> int:
        """How many calls' follow-ups are kept."""

    def remember(self, call_id: str, follow_ups: FollowUps) -> None:
        """Keep `follow_ups` for `call_id`, replacing what was kept."""

    def get(self, call_id: str) -> FollowUps | None:
        """The follow-ups kept for `call_id`, if any."""

    def pop(self, call_id: str) -> FollowUps | None:
        """The follow-ups kept for `call_id`, if any, forgotten from now on."""

    def sweep(self) -> int:
        """Forget the follow-ups of calls that saw no hangup in time; return how many."""


class LocalFollowUps:
    """Follow-ups in this process's memory: at most `max_calls`, the oldest dropped first,
    each forgotten `expire_after` seconds after it was last kept."""

    def __init__(
        self,
        max_calls: int,
        expire_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_calls = max_calls
        self._expire_after = expire_after
        self._clock = clock
        self._lock = threading.Lock()
        # callId -> (follow-ups, expiry); ordered by when it was kept, so the oldest is first.
        self._calls: OrderedDict[str, tuple[FollowUps, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def remember(self, call_id: str, follow_ups: FollowUps) -> None:
        """Keep `follow_ups` for `call_id`, replacing what was kept."""
        expires = self._clock() + self._expire_after
        with self._lock:
            self._calls[call_id] = (follow_ups, expires)
            self._calls.move_to_end(call_id)
            while len(self._calls) > self._max_calls:
                self._calls.popitem(last=False)

    def get(self, call_id: str) -> FollowUps | None:
        """The follow-ups kept for `call_id`, if any."""
        with self._lock:
            entry = self._calls.get(call_id)
        return entry[0] if entry is not None else None

    def pop(self, call_id: str) -> FollowUps | None:
        """The follow-ups kept for `call_id`, if any, forgotten from now on."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
        return entry[0] if entry is not None else None

    def sweep(self) -> int:
        """Forget the follow-ups of calls that saw no hangup in time; return how many."""
        now = self._clock()
        forgotten = 0
        with self._lock:
            while self._calls:
                _, (_, expires) = next(iter(self._calls.items()))
                if expires > now:
                    break
                self._calls.popitem(last=False)
                forgotten += 1
        return forgotten
