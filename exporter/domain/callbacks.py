"""Missed callers owed a callback, kept only as keyed hashes of their numbers."""

from __future__ import annotations

import hmac
import secrets
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from exporter.domain.calls import (
    BUSY,
    EXPIRED,
    FAILED,
    FORWARDED_OUTCOME,
    MISSED,
    REJECTED,
    VOICEMAIL,
)

CALLED_BACK: Final = "called_back"
CALLED_AGAIN: Final = "called_again"
RESULTS: Final = (CALLED_BACK, CALLED_AGAIN, EXPIRED)  # the `result` label values
DROPPED: Final = "dropped"  # closed to stay within max_pending; counted apart
# Outcomes of an incoming call that leave its caller owed a callback; short abandons included.
OWED_OUTCOMES: Final = frozenset((MISSED, VOICEMAIL, BUSY, REJECTED, FAILED, FORWARDED_OUTCOME))

DEFAULT_EXPIRE_AFTER: Final = 3 * 86400.0
DEFAULT_MAX_PENDING: Final = 10_000
KEY_BYTES: Final = 32
# 128 bits: among 10,000 debts the odds of a collision are about 1e-31, at half the memory.
DIGEST_BYTES: Final = 16

Digest = bytes


@dataclass(frozen=True, slots=True)
class ClosedDebt:
    """A debt that ended: its line, `result` (RESULTS or DROPPED), and the delay when settled."""

    line: str
    result: str
    delay: float | None = None


_NONE: Final[tuple[ClosedDebt, ...]] = ()


class Callbacks:
    """Callers owed a callback, per line, in the order the debts were opened.

    A debt runs from the end of the first missed call; later misses of the same number on the
    same line add nothing. Every method that takes a time first expires the debts due then, and
    returns every debt it closed. Not thread-safe: the call tracker calls it under its own lock.
    """

    def __init__(
        self,
        expire_after: float = DEFAULT_EXPIRE_AFTER,
        max_pending: int = DEFAULT_MAX_PENDING,
        key: bytes | None = None,
    ) -> None:
        if expire_after <= 0 or max_pending < 1:
            raise ValueError("expire_after and max_pending must be positive")
        self.expire_after = expire_after
        self.max_pending = max_pending
        self._key = _checked_key(secrets.token_bytes(KEY_BYTES) if key is None else key)
        self._since: OrderedDict[tuple[Digest, str], float] = OrderedDict()
        self._lines: dict[Digest, list[str]] = {}  # lines each number is owed on, to settle fast
        self._pending: Counter[str] = Counter()

    @property
    def key(self) -> bytes:
        """The key of the numbers' hashes."""
        return self._key

    def __len__(self) -> int:
        return len(self._since)

    def digest(self, number: str | None) -> Digest | None:
        """The keyed hash of a number one can call back; None for anonymous, empty or non-digits."""
        digits = _normalised(number)
        if digits is None:
            return None
        # Not the one-shot hmac.digest: it lets go of the interpreter lock, which callers
        # holding the tracker's and the store's locks wait to get back (bench/RESULTS.md).
        mac = hmac.new(self._key, digits.encode("ascii"), "sha256")
        return mac.digest()[:DIGEST_BYTES]

    def owe(self, digest: Digest | None, line: str, ended_at: float) -> tuple[ClosedDebt, ...]:
        """Owe the caller a callback on `line` from `ended_at`, unless it is owed one there."""
        closed = self.expire(ended_at)
        if digest is None or (digest, line) in self._since:
            return closed
        return closed + self._open(digest, line, ended_at)

    def settle(
        self, digest: Digest | None, answered_at: float, result: str
    ) -> tuple[ClosedDebt, ...]:
        """Settle the number's debts on every line, opened by `answered_at` and not overdue."""
        if result not in (CALLED_BACK, CALLED_AGAIN):
            raise ValueError(f"a debt is settled {CALLED_BACK} or {CALLED_AGAIN}, not {result}")
        closed = self.expire(answered_at)
        lines = self._lines.get(digest) if digest is not None else None
        if digest is None or lines is None:
            return closed
        settled = []
        for line in tuple(lines):
            delay = answered_at - self._since[(digest, line)]
            # An answer before the miss settles nothing; an overdue debt waits for expire.
            if 0 <= delay < self.expire_after:
                settled.append(self._close((digest, line), result, delay))
        return closed + tuple(settled)

    def expiry_due(self, now: float) -> bool:
        """Whether `expire(now)` would close a debt."""
        since = self._since
        return bool(since) and next(iter(since.values())) <= now - self.expire_after

    def expire(self, now: float) -> tuple[ClosedDebt, ...]:
        """Close as expired the debts opened `expire_after` or longer before `now`, oldest first."""
        if not self.expiry_due(now):  # the sweeper asks every second: O(1) when nothing is due
            return _NONE
        cutoff = now - self.expire_after
        since = self._since
        closed = []
        # Opening order is time order but for the forward grace (seconds): expiry waits that long.
        while since and next(iter(since.values())) <= cutoff:
            closed.append(self._close(next(iter(since)), EXPIRED, None))
        return tuple(closed)

    def drop(self, debts: Iterable[tuple[Digest, str]]) -> tuple[ClosedDebt, ...]:
        """Close those of `debts` (hash, line) still owed as dropped: a store's bound."""
        return tuple(self._close(debt, DROPPED, None) for debt in debts if debt in self._since)

    def pending_by_line(self) -> Counter[str]:
        """Numbers owed a callback now, by line; a line once owed stays, at 0, until a restore."""
        return self._pending.copy()

    def export_state(self) -> dict[str, Any]:
        """JSON-ready state for `restore_state`: the key and the debts, hashes in hex."""
        debts = [[digest.hex(), line, since] for (digest, line), since in self._since.items()]
        return {"key": self._key.hex(), "debts": debts}

    def restore_state(self, state: Mapping[str, Any] | None) -> tuple[ClosedDebt, ...]:
        """Replace everything with an exported state; None or {} (older snapshots) start empty
        with a new key. Returns the oldest debts dropped past a lowered max_pending."""
        self._since.clear()
        self._lines.clear()
        self._pending.clear()
        if not state:
            self._key = secrets.token_bytes(KEY_BYTES)
            return _NONE
        self._key = _checked_key(bytes.fromhex(state["key"]))
        dropped: tuple[ClosedDebt, ...] = ()
        for digest_hex, line, since in state["debts"]:
            digest = bytes.fromhex(digest_hex)
            if (digest, line) not in self._since:
                dropped += self._open(digest, line, float(since))
        return dropped

    def _open(self, digest: Digest, line: str, since: float) -> tuple[ClosedDebt, ...]:
        dropped = _NONE
        if len(self._since) >= self.max_pending:
            dropped = (self._close(next(iter(self._since)), DROPPED, None),)
        self._since[(digest, line)] = since
        self._lines.setdefault(digest, []).append(line)
        self._pending[line] += 1
        return dropped

    def _close(self, debt: tuple[Digest, str], result: str, delay: float | None) -> ClosedDebt:
        del self._since[debt]
        digest, line = debt
        lines = self._lines[digest]
        lines.remove(line)
        if not lines:
            del self._lines[digest]
        self._pending[line] -= 1
        return ClosedDebt(line, result, delay)


def _normalised(number: str | None) -> str | None:
    """E.164 digits as sipgate sends them: a `+` or `00` prefix dropped; None for anything else."""
    digits = (number or "").strip()
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    return digits if digits.isascii() and digits.isdigit() else None


def _checked_key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise ValueError(f"the callback key must have {KEY_BYTES} bytes, not {len(key)}")
    return key
