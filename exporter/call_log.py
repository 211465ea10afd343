"""The log lines about calls: one per event at debug, one per ended call at info."""

from __future__ import annotations

import logging

from exporter.domain.calls import EndedCall
from exporter.domain.events import Answer, Event, Hangup, NewCall, UnknownEvent, event_label
from exporter.logs import mask_number

log = logging.getLogger(__name__)


def log_event(event: Event, matched: bool) -> None:
    """A debug line naming the event and its call, with phone numbers masked."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    details = f"call={event.call_id}"
    if isinstance(event, NewCall):
        details += (
            f" direction={event.direction} from={mask_number(event.from_number)}"
            f" to={mask_number(event.to_number)} users={len(event.users)}"
            f" orig={event.orig_call_id or '-'}"
        )
    elif isinstance(event, Hangup):
        details += f" cause={event.cause}"
    elif isinstance(event, Answer):
        details += f" voicemail={event.is_voicemail}"
    name = event.name if isinstance(event, UnknownEvent) else event_label(event)
    log.debug("event %s %s%s", name, details, "" if matched else " (unmatched)")


def log_calls_ended(calls: tuple[EndedCall, ...]) -> None:
    """One info line per ended call."""
    for call in calls:
        log.info(
            "call %s ended: direction=%s outcome=%s legs=%d wait=%s duration=%s",
            call.call_id,
            call.direction,
            call.outcome,
            call.legs,
            _seconds(call.wait),
            _seconds(call.duration),
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
