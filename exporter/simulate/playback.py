"""Play planned calls to an exporter on their schedule and tally what was sent."""

from __future__ import annotations

import heapq
import http.client
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, TextIO

from exporter.domain.callbacks import CALLED_AGAIN, CALLED_BACK
from exporter.simulate.sender import Sender
from exporter.simulate.traffic import PlannedCall, PlannedEvent, TrafficPlanner

CALLBACK_RESULTS = (CALLED_BACK, CALLED_AGAIN)


@dataclass
class Tally:
    """What was sent: calls by (direction, outcome) once all their events went out, and the
    callback debts they opened and settled (by result)."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: int = 0
    owed: int = 0
    settled: Counter[str] = field(default_factory=Counter)

    @property
    def in_flight(self) -> int:
        """Calls started whose last event is not sent yet."""
        return self.started - sum(self.calls.values())

    def progress_line(self, elapsed: float) -> str:
        """A one-line progress report."""
        return (
            f"[{elapsed:6.1f}s] calls started {self.started}, completed {sum(self.calls.values())}"
            f", events sent {sum(self.events.values())}, errors {sum(self.errors.values())}"
        )

    def summary(self) -> str:
        """The table printed at the end, to compare with the dashboard."""
        lines = ["direction  outcome     calls"]
        lines += [
            f"{direction:<10} {outcome:<11} {count:>5}"
            for (direction, outcome), count in sorted(self.calls.items())
        ]
        lines.append(f"total                  {sum(self.calls.values()):>5}")
        if self.in_flight:
            lines.append(f"interrupted before their last event: {self.in_flight} calls")
        settled = "".join(f"{result} {self.settled[result]}, " for result in CALLBACK_RESULTS)
        still_owed = self.owed - sum(self.settled.values())
        lines.append(f"callbacks: {settled}still owed {still_owed}")
        events = ", ".join(f"{name} {count}" for name, count in sorted(self.events.items()))
        lines.append(f"events sent: {events or 'none'}")
        errors = ", ".join(f"{name} {count}" for name, count in sorted(self.errors.items()))
        lines.append(f"errors: {errors or 'none'}")
        return "\n".join(lines)


@dataclass(order=True)
class _Pending:
    at: float
    serial: int
    event: PlannedEvent = field(compare=False)
    call: PlannedCall = field(compare=False)
    last: bool = field(compare=False)


def play(
    planner: TrafficPlanner,
    sender: Sender,
    speed: float,
    max_calls: int | None = None,
    duration: float | None = None,
    progress: TextIO | None = None,
    progress_interval: float = 10.0,
) -> Tally:
    """Send planned calls in real time divided by `speed` until a bound or an interrupt."""
    tally = Tally()
    heap: list[_Pending] = []
    serial = 0
    calls = iter(planner)
    upcoming: PlannedCall | None = next(calls)
    started = time.monotonic()
    next_progress = started + progress_interval
    try:
        while True:
            while upcoming is not None and (not heap or upcoming.events[0].at <= heap[0].at):
                out_of_time = duration is not None and upcoming.events[0].at / speed > duration
                if out_of_time or (max_calls is not None and tally.started >= max_calls):
                    upcoming = None
                    break
                tally.started += 1
                for index, event in enumerate(upcoming.events):
                    serial += 1
                    last = index == len(upcoming.events) - 1
                    heapq.heappush(heap, _Pending(event.at, serial, event, upcoming, last))
                upcoming = next(calls)
            if not heap:
                break
            pending = heapq.heappop(heap)
            due = started + pending.at / speed
            while (now := time.monotonic()) < due or now >= next_progress:
                if now >= next_progress:
                    if progress is not None:
                        print(tally.progress_line(now - started), file=progress, flush=True)
                    next_progress += progress_interval
                else:
                    time.sleep(min(due, next_progress) - now)
            _send(sender, pending, tally)
    except KeyboardInterrupt:
        pass
    finally:
        sender.close()
    return tally


class RefusedError(Exception):
    """The exporter refuses every event like this one: why, and what to do about it."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}\n  {fix}")


# What an operator does about a refusal the next event would meet too, by status.
_FIXES: Final = {
    401: "put the exporter's basic auth credentials into --target: "
    "http://USER:PASSWORD@HOST:9850/webhook",
    403: "start the exporter with --webhook.verify-signature=false for simulated events, or pass "
    "--sign-key with the private key of its --webhook.signature-key",
    413: "the exporter's --webhook.max-body-bytes is smaller than a simulated event: raise it",
}
_SOURCE_FIX: Final = (
    "add this machine's address to the exporter's --webhook.allowed-networks, or simulate from "
    "an allowed address"
)


def _refusal(status: int, reply: bytes) -> RefusedError | None:
    if status not in _FIXES:
        return None
    reason = reply.decode("utf-8", "replace").strip() or "no reason given"
    fix = _SOURCE_FIX if status == 403 and reason.startswith("source address") else _FIXES[status]
    return RefusedError(f"the exporter refused the event with {status}: {reason}", fix)


def _send(sender: Sender, pending: _Pending, tally: Tally) -> None:
    event = pending.event
    try:
        status, reply = sender.post(event.body)
    except ConnectionRefusedError:
        raise RefusedError(
            f"cannot connect to {sender.target}: connection refused",
            "start the exporter first (make run), or point --target at it",
        ) from None
    except (OSError, http.client.HTTPException):
        tally.errors["connection"] += 1
        return
    refused = _refusal(status, reply)
    if refused is not None:
        raise refused
    tally.events[event.name] += 1
    if status != 200:
        tally.errors[f"http_{status}"] += 1
    elif event.name == "newCall" and b"onHangup=" not in reply:
        tally.errors["no_subscription"] += 1
    if pending.last:
        call = pending.call
        tally.calls[(call.direction, call.outcome)] += 1
        tally.owed += call.owes
        tally.settled.update(call.settles)
