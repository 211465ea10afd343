"""Webhook requests counted by the web layer: by event and status, refusals by reason, time."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.domain.statistics import Histogram

# The `event` label of a request that never became an event.
INVALID: Final = "invalid"


@dataclass
class RequestStats:
    """A copy of the request counts, taken at one moment."""

    requests: Counter[tuple[str, str]]
    rejected: Counter[str]
    duration: Histogram


@dataclass
class WebhookRequests:
    """Thread-safe counts of webhook requests; the counts survive restarts, the times do not."""

    buckets: tuple[float, ...]
    _requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    _rejected: Counter[str] = field(default_factory=Counter)
    _duration: Histogram = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._duration = Histogram(self.buckets)

    def count(self, event: str, status: int) -> None:
        """Count one request that reached an event, answered with `status`."""
        with self._lock:
            self._requests[(event, str(status))] += 1

    def count_rejection(self, reason: str, status: int) -> None:
        """Count a request refused before it became an event."""
        with self._lock:
            self._requests[(INVALID, str(status))] += 1
            self._rejected[reason] += 1

    def observe(self, seconds: float) -> None:
        """Record how long answering one request took."""
        with self._lock:
            self._duration.observe(seconds)

    def read(self) -> RequestStats:
        """A consistent copy of every count."""
        with self._lock:
            return RequestStats(self._requests.copy(), self._rejected.copy(), self._duration.copy())

    def export_state(self) -> dict[str, Any]:
        """The counts as plain data, for `restore_state`."""
        with self._lock:
            return {
                "requests": [[list(key), n] for key, n in self._requests.items()],
                "rejected": list(self._rejected.items()),
            }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take over the counts of `export_state`; request times start from zero."""
        with self._lock:
            self._requests = Counter({tuple(key): n for key, n in state.get("requests", [])})
            self._rejected = Counter(dict(state.get("rejected", [])))
            self._duration = Histogram(self.buckets)
