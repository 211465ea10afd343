"""The calls ringing now, oldest first per direction and line: how long the longest waits."""

from __future__ import annotations

from collections import OrderedDict

Key = tuple[str, str]  # (direction, line)


class RingingCalls:
    """Start times of ringing calls by (direction, line); not thread-safe, like its tracker."""

    def __init__(self) -> None:
        self._by_key: dict[Key, OrderedDict[str, float]] = {}

    def add(self, key: Key, call_id: str, since: float) -> None:
        """A call started ringing at `since`; calls are added in the order they start."""
        self._by_key.setdefault(key, OrderedDict())[call_id] = since

    def remove(self, key: Key, call_id: str) -> None:
        """A call was answered or ended."""
        calls = self._by_key.get(key)
        if calls is not None:
            calls.pop(call_id, None)

    def clear(self) -> None:
        """Forget every call."""
        self._by_key.clear()

    def oldest(self) -> dict[Key, float]:
        """When the call ringing longest started, by key; 0.0 for keys with none ringing now."""
        return {key: next(iter(calls.values()), 0.0) for key, calls in self._by_key.items()}
