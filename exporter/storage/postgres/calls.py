"""Calls in progress, their legs and the callback debts as rows, locked by the transaction that
changes them.

A call's row holds its whole record (`exporter/domain/records.py`) and, beside it, the columns
that sweeps and the gauges search by. Rows are locked in key order, so that transactions that
lock several never deadlock one another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg.types.json import Jsonb

from exporter.domain.calls import RINGING, TALKING
from exporter.domain.records import CALL_FIELD_NAMES
from exporter.storage.postgres.connect import Connection

# Calls and debts one sweep takes at most; the rest wait for the next second.
SWEEP_BATCH: Final = 500

_LOCK_CALLS: Final = """
    SELECT c.record FROM sipgate_exporter.legs l
    JOIN sipgate_exporter.open_calls c ON c.call_id = l.call_id
    WHERE l.leg_id = ANY(%s) ORDER BY c.call_id FOR UPDATE OF c
"""
_DUE_CALLS: Final = """
    SELECT record FROM sipgate_exporter.open_calls
    WHERE grace_until <= %(now)s OR last_event_at <= %(cutoff)s
    ORDER BY call_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
_DEBTS: Final = """
    SELECT party, line, since FROM sipgate_exporter.callback_debts
    WHERE party = ANY(%s) ORDER BY party, line FOR UPDATE
"""
_DUE_DEBTS: Final = """
    SELECT party, line, since FROM sipgate_exporter.callback_debts
    WHERE party = ANY(%(parties)s) OR since <= %(cutoff)s
    ORDER BY party, line LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
_END_CALLS: Final = "DELETE FROM sipgate_exporter.open_calls WHERE call_id = ANY(%s)"
_SAVE_CALL: Final = """
    INSERT INTO sipgate_exporter.open_calls
        (call_id, direction, line, state, started_at, last_event_at, grace_until, record)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (call_id) DO UPDATE SET state = excluded.state,
        last_event_at = excluded.last_event_at, grace_until = excluded.grace_until,
        record = excluded.record
"""
_ADD_LEGS: Final = """
    INSERT INTO sipgate_exporter.legs (leg_id, call_id)
    SELECT * FROM unnest(%s::text[], %s::text[])
"""
_CLOSE_DEBTS: Final = """
    DELETE FROM sipgate_exporter.callback_debts
    WHERE (party, line) IN (SELECT * FROM unnest(%s::bytea[], %s::text[]))
"""
_OPEN_DEBTS: Final = """
    INSERT INTO sipgate_exporter.callback_debts (party, line, since)
    SELECT * FROM unnest(%s::bytea[], %s::text[], %s::double precision[])
    ON CONFLICT (party, line) DO NOTHING
"""

_FIELD: Final = {name: index for index, name in enumerate(CALL_FIELD_NAMES)}

# A debt as `Callbacks.export_state` writes it: [party in hex, line, since].
Debt = list[Any]


@dataclass(frozen=True, slots=True)
class Taken:
    """Calls and debts a transaction locked, as their records, to hand to a tracker."""

    calls: list[list[Any]]
    debts: list[Debt]

    @property
    def parties(self) -> list[bytes]:
        """The callers' hashes of the calls, for their debts."""
        found = (record[_FIELD["party"]] for record in self.calls)
        return sorted({bytes.fromhex(party) for party in found if party})


def lock_calls(connection: Connection, leg_ids: Sequence[str]) -> list[list[Any]]:
    """Lock and read the calls that have one of `leg_ids` as a leg."""
    return [row[0] for row in connection.execute(_LOCK_CALLS, (list(leg_ids),))]


def lock_debts(connection: Connection, parties: Sequence[bytes]) -> list[Debt]:
    """Lock and read the debts owed to `parties`, waiting for other transactions."""
    if not parties:
        return []
    return [_debt(*row) for row in connection.execute(_DEBTS, (list(parties),))]


def take_due(
    connection: Connection, now: float, expire_after: float, debts_expire_after: float
) -> Taken:
    """Lock calls whose grace ran out or that went quiet for `expire_after`, with their
    callers' debts, and debts due to expire; skipping what other transactions hold."""
    calls = [
        row[0]
        for row in connection.execute(
            _DUE_CALLS, {"now": now, "cutoff": now - expire_after, "limit": SWEEP_BATCH}
        )
    ]
    parties = Taken(calls, []).parties
    cutoff = now - debts_expire_after
    rows = connection.execute(
        _DUE_DEBTS, {"parties": parties, "cutoff": cutoff, "limit": SWEEP_BATCH}
    )
    return Taken(calls, [_debt(*row) for row in rows])


def save(
    connection: Connection, before: Taken, calls: Iterable[Any], debts: Iterable[Debt]
) -> None:
    """Write what a tracker made of `before`: `calls` and `debts` as it exports them now."""
    after = {record[0]: record for record in calls}
    ended = [record[0] for record in before.calls if record[0] not in after]
    if ended:
        connection.execute(_END_CALLS, (ended,))
    legs_before = {leg[0] for record in before.calls for leg in record[-1]}
    new_legs: list[tuple[str, str]] = []
    for call_id, record in after.items():
        connection.execute(_SAVE_CALL, _call_row(record))
        new_legs += [(leg[0], call_id) for leg in record[-1] if leg[0] not in legs_before]
    if new_legs:
        connection.execute(
            _ADD_LEGS, ([leg for leg, _ in new_legs], [call for _, call in new_legs])
        )
    _save_debts(connection, before.debts, debts)


def _save_debts(connection: Connection, before: Iterable[Debt], after: Iterable[Debt]) -> None:
    owed_before = {(party, line) for party, line, _ in before}
    owed_after = {(party, line): since for party, line, since in after}
    closed = sorted(owed_before - owed_after.keys())
    if closed:
        connection.execute(
            _CLOSE_DEBTS,
            ([bytes.fromhex(party) for party, _ in closed], [line for _, line in closed]),
        )
    opened = sorted(owed_after.keys() - owed_before)
    if opened:
        connection.execute(
            _OPEN_DEBTS,
            (
                [bytes.fromhex(party) for party, _ in opened],
                [line for _, line in opened],
                [owed_after[debt] for debt in opened],
            ),
        )


def _call_row(record: Sequence[Any]) -> tuple[Any, ...]:
    answered = record[_FIELD["person_answered"]] or record[_FIELD["voicemail_answered"]]
    return (
        record[_FIELD["call_id"]],
        record[_FIELD["direction"]],
        record[_FIELD["line"]],
        TALKING if answered else RINGING,
        record[_FIELD["started_at"]],
        record[_FIELD["last_event_at"]],
        record[_FIELD["grace_until"]],
        Jsonb(record),
    )


def _debt(party: bytes, line: str, since: float) -> Debt:
    return [bytes(party).hex(), line, since]
