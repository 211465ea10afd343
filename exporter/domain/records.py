"""A call in progress as plain, JSON-ready data for snapshots, and back."""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any, Final

from exporter.domain.calls import Call, Leg

# What a saved state keeps of a call and of each leg, in this order; fields are only appended.
CALL_FIELD_NAMES: Final = (
    "call_id",
    "direction",
    "started_at",
    "last_event_at",
    "answered_at",
    "person_answered",
    "voicemail_answered",
    "last_cause",
    "last_hangup_at",
    "grace_until",
    "open_legs",
    "line",
    "team",
    "user",
    "named",
    "party",
)
_CALL_FIELDS: Final = attrgetter(*CALL_FIELD_NAMES)
_LEG_FIELDS: Final = attrgetter("voicemail", "answered", "hung_up")
_PARTY: Final = CALL_FIELD_NAMES.index("party")  # bytes, kept as hex


def call_record(call: Call, legs: Mapping[str, Leg]) -> tuple[Any, ...]:
    """The call's fields, then its legs as (id, voicemail, answered, hung up)."""
    # Runs under the tracker's lock for every call in progress: attrgetter copies in C.
    fields = list(_CALL_FIELDS(call))
    if call.party is not None:
        fields[_PARTY] = call.party.hex()
    return (*fields, [(leg_id, *_LEG_FIELDS(legs[leg_id])) for leg_id in call.leg_ids])


def restore_call(record: list[Any]) -> tuple[Call, list[tuple[str, Leg]]]:
    """The call of a `call_record`, and its legs by id."""
    *fields, leg_records = record
    # Records from before a field existed end early: those fields keep their defaults.
    values = dict(zip(CALL_FIELD_NAMES, fields, strict=False))
    call = Call(values["call_id"], values["direction"], values["started_at"], values["line"])
    for name, value in values.items():
        setattr(call, name, value)
    if call.party is not None:
        call.party = bytes.fromhex(str(call.party))
    legs = []
    for leg_id, voicemail, answered, hung_up in leg_records:
        leg = Leg(call, voicemail)
        leg.answered, leg.hung_up = answered, hung_up
        legs.append((leg_id, leg))
        call.leg_ids.append(leg_id)
    return call, legs
