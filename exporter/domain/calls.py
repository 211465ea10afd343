"""A call and its legs, their outcomes, and what ending one reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.domain.events import FORWARDED
from exporter.domain.labels import OTHER

ANSWERED: Final = "answered"
VOICEMAIL: Final = "voicemail"
MISSED: Final = "missed"
BUSY: Final = "busy"
REJECTED: Final = "rejected"
FAILED: Final = "failed"
FORWARDED_OUTCOME: Final = "forwarded"
EXPIRED: Final = "expired"
OUTCOMES: Final = (ANSWERED, VOICEMAIL, MISSED, BUSY, REJECTED, FAILED, FORWARDED_OUTCOME, EXPIRED)

RINGING: Final = "ringing"
TALKING: Final = "talking"
STATES: Final = (RINGING, TALKING)

PERSON: Final = "person"
# A person, but sipgate named no user: a queue, a pickup, a team member's external phone.
UNNAMED: Final = "unnamed"
ANSWERERS: Final = (PERSON, UNNAMED, VOICEMAIL)

_OUTCOME_BY_LAST_CAUSE: Final = {
    "cancel": MISSED,
    "busy": BUSY,
    "noAnswer": REJECTED,
    FORWARDED: FORWARDED_OUTCOME,
}


class Leg:
    """One callId of a call."""

    __slots__ = ("answered", "call", "hung_up", "voicemail")

    def __init__(self, call: Call, voicemail: bool) -> None:
        self.call = call
        self.voicemail = voicemail
        self.answered = False
        self.hung_up = False


class Call:
    """What the customer experiences: one or more legs from the first ring to the last hangup."""

    __slots__ = (
        "answered_at",
        "call_id",
        "direction",
        "grace_until",
        "last_cause",
        "last_event_at",
        "last_hangup_at",
        "leg_ids",
        "line",
        "named",
        "open_legs",
        "party",
        "person_answered",
        "started_at",
        "team",
        "user",
        "voicemail_answered",
    )

    def __init__(self, call_id: str, direction: str, now: float, line: str = OTHER) -> None:
        self.call_id = call_id
        self.direction = direction
        self.line = line
        # The first person who answered an incoming call, or the caller of an outgoing one.
        self.team: str | None = None
        self.user: str | None = None
        self.started_at = now
        self.last_event_at = now
        self.leg_ids: list[str] = []
        self.open_legs = 0
        self.answered_at: float | None = None
        self.person_answered = False
        self.voicemail_answered = False
        self.last_cause: str | None = None
        self.last_hangup_at = now
        self.grace_until: float | None = None
        # The keyed hash of the other party's number, for callbacks; never the number itself.
        self.party: bytes | None = None
        # Whether an answer by a person named its user: None before any such answer.
        self.named: bool | None = None

    @property
    def state(self) -> str:
        """`talking` once anyone answered, `ringing` before."""
        answered = self.person_answered or self.voicemail_answered
        return TALKING if answered else RINGING

    def outcome(self) -> str:
        """The outcome of a call that ended with its last hangup or grace."""
        if self.person_answered:
            return ANSWERED
        if self.voicemail_answered:
            return VOICEMAIL
        return _OUTCOME_BY_LAST_CAUSE.get(self.last_cause or "", FAILED)


@dataclass(frozen=True, slots=True)
class EndedCall:
    """A summary of a call that just ended, for logging."""

    call_id: str
    direction: str
    outcome: str
    legs: int
    wait: float | None
    duration: float | None


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling one event did."""

    matched: bool
    ended: tuple[EndedCall, ...] = ()


# The two results without ended calls, made once: most events end none.
MATCHED: Final = Handled(matched=True)
UNMATCHED: Final = Handled(matched=False)
