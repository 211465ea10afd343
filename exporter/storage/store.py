"""The storage seam: what keeps the exporter's state, and the store that keeps nothing.

Every change to the state passes through `Store.record` as an `Entry`: the store keeps the
entry and applies the change in one step, in one order, so that what a restart replays is
exactly what was applied. The embedded store (exporter/storage/sqlite.py) journals entries and
writes snapshots; the shared one (exporter/storage/postgres/) commits each entry's effect in
one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from exporter.storage.health import StoreHealth

T = TypeVar("T")

# Entry kinds; their numbers are written to journal files.
EVENT: Final = 1
SWEEP: Final = 2
REJECTION: Final = 3
ERROR: Final = 4

State = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One change: a webhook event's raw body, a sweep, a refused or a failed request."""

    kind: int
    at: float
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    """What a store kept: the last whole state, and the entries recorded after it in order."""

    state: State | None = None
    entries: Iterable[Entry] = field(default_factory=tuple)


class Store(Protocol):
    """Keeps the exporter's state across restarts; `health` tells whether it can write now."""

    health: StoreHealth

    def load(self) -> Saved:
        """The saved state and the entries after it; read once, at start."""

    def record(self, entry: Entry, apply: Callable[[], T]) -> T:
        """Keep `entry` and run `apply`, in the order of all entries; return once `entry` is
        kept as durably as acknowledging it needs. Raise StateError, applying nothing, if the
        entry cannot be kept."""

    def maintain(self, export: Callable[[], State]) -> None:
        """Housekeeping, about once a second; `export` gives the whole state when needed."""

    def close(self, export: Callable[[], State] | None = None) -> None:
        """Keep the final state of `export()`, if given, and release the store."""


class MemoryStore:
    """A store that keeps nothing: statistics start from zero at every start."""

    def __init__(self) -> None:
        self.health = StoreHealth()  # never failing

    def load(self) -> Saved:
        """Nothing was saved."""
        return Saved()

    def record(self, entry: Entry, apply: Callable[[], T]) -> T:
        """Apply the change."""
        return apply()

    def maintain(self, export: Callable[[], State]) -> None:
        """Nothing to do."""

    def close(self, export: Callable[[], State] | None = None) -> None:
        """Nothing to release."""
