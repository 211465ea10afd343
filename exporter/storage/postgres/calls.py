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

import psycopg
from psycopg.types.json import Jsonb

from exporter.domain.calls import RINGING, TALKING
from exporter.domain.records import CALL_FIELD_NAMES
from exporter.storage.postgres.connect import Connection

# Calls and debts one sweep takes at most; the rest wait for the next second.
SWEEP_BATCH: Final = 500

# Locks the calls of some legs, then, if asked, their callers' debts, then reads the clock:
# the target list is evaluated in order, so the time is taken once the locks are held.
_TAKE: Final = """
    SELECT
        ARRAY(
            SELECT c.record FROM sipgate_exporter.legs l
            JOIN sipgate_exporter.open_calls c ON c.call_id = l.call_id
            WHERE l.leg_id = ANY(%(legs)s) ORDER BY c.call_id FOR UPDATE OF c
        ),
        ARRAY(
            SELECT jsonb_build_array(encode(d.party, 'hex'), d.line, d.since)
            FROM sipgate_exporter.callback_debts d
            WHERE %(debts)s AND d.party IN (
                SELECT c.party FROM sipgate_exporter.legs l
                JOIN sipgate_exporter.open_calls c ON c.call_id = l.call_id
                WHERE l.leg_id = ANY(%(legs)s)
            )
            ORDER BY d.party, d.line FOR UPDATE OF d
        ),
        extract(epoch FROM clock_timestamp())
"""
_DUE_CALLS: Final = """
    SELECT record FROM sipgate_exporter.open_calls
    WHERE grace_until <= %(now)s OR last_event_at <= %(cutoff)s
    ORDER BY call_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
_DUE_DEBTS: Final = """
    SELECT party, line, since FROM sipgate_exporter.callback_debts
    WHERE party = ANY(%(parties)s) OR since <= %(cutoff)s
    ORDER BY party, line LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
# What a transaction changes in the calls, legs and debts, as parts of one statement: each
# part is given arrays, empty when it has nothing to do (store.py joins the parts).
WRITES: Final = (
    """ended AS (
        DELETE FROM sipgate_exporter.open_calls WHERE call_id = ANY(%(ended)s::text[])
    )""",
    """saved AS (
        INSERT INTO sipgate_exporter.open_calls (
            call_id, direction, line, state, started_at, last_event_at, grace_until, party,
            record
        )
        SELECT * FROM unnest(
            %(call_ids)s::text[], %(directions)s::text[], %(lines)s::text[], %(states)s::text[],
            %(started)s::double precision[], %(last_events)s::double precision[],
            %(graces)s::double precision[], %(parties)s::bytea[], %(records)s::jsonb[]
        )
        ON CONFLICT (call_id) DO UPDATE SET state = excluded.state,
            last_event_at = excluded.last_event_at, grace_until = excluded.grace_until,
            record = excluded.record
    )""",
    """legs AS (
        INSERT INTO sipgate_exporter.legs (leg_id, call_id)
        SELECT * FROM unnest(%(leg_ids)s::text[], %(leg_calls)s::text[])
    )""",
    """closed AS (
        DELETE FROM sipgate_exporter.callback_debts
        WHERE (party, line) IN (
            SELECT * FROM unnest(%(closed_parties)s::bytea[], %(closed_lines)s::text[])
        )
    )""",
    """opened AS (
        INSERT INTO sipgate_exporter.callback_debts (party, line, since)
        SELECT * FROM unnest(
            %(opened_parties)s::bytea[], %(opened_lines)s::text[],
            %(opened_since)s::double precision[]
        )
        ON CONFLICT (party, line) DO NOTHING
    )""",
)
NOTHING_WRITTEN: Final[dict[str, list[Any]]] = {
    name: []
    for name in (
        "ended",
        "call_ids",
        "directions",
        "lines",
        "states",
        "started",
        "last_events",
        "graces",
        "parties",
        "records",
        "leg_ids",
        "leg_calls",
        "closed_parties",
        "closed_lines",
        "opened_parties",
        "opened_lines",
        "opened_since",
    )
}

# The columns of a call's row in WRITES, as `_call_row` gives them.
_COLUMNS: Final = (
    "call_ids",
    "directions",
    "lines",
    "states",
    "started",
    "last_events",
    "graces",
    "parties",
    "records",
)
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


def take(connection: Connection, leg_ids: Sequence[str], debts: bool) -> tuple[Taken, float]:
    """Lock and read the calls that have one of `leg_ids` as a leg, and with `debts` the
    debts owed to their callers, waiting for other transactions; and the database's time
    after that, in unix seconds."""
    row = connection.execute(_TAKE, {"legs": list(leg_ids), "debts": debts}).fetchone()
    if row is None:
        raise psycopg.ProgrammingError("no row from the calls' lock")
    calls, owed, now = row
    return Taken(calls, owed), float(now)


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


def save(before: Taken, calls: Iterable[Any], debts: Iterable[Debt]) -> dict[str, list[Any]]:
    """The parameters of WRITES that write what a tracker made of `before`: `calls` and
    `debts` as it exports them now."""
    after = {record[0]: record for record in calls}
    written: dict[str, list[Any]] = {name: [] for name in NOTHING_WRITTEN}
    written["ended"] = [record[0] for record in before.calls if record[0] not in after]
    legs_before = {leg[0] for record in before.calls for leg in record[-1]}

    for call_id, record in after.items():
        for column, value in zip(_COLUMNS, _call_row(record), strict=True):
            written[column].append(value)
        for leg in record[-1]:
            if leg[0] not in legs_before:
                written["leg_ids"].append(leg[0])
                written["leg_calls"].append(call_id)
    owed_before = {(party, line) for party, line, _ in before.debts}
    owed_after = {(party, line): since for party, line, since in debts}
    for party, line in sorted(owed_before - owed_after.keys()):
        written["closed_parties"].append(bytes.fromhex(party))
        written["closed_lines"].append(line)
    for party, line in sorted(owed_after.keys() - owed_before):
        written["opened_parties"].append(bytes.fromhex(party))
        written["opened_lines"].append(line)
        written["opened_since"].append(owed_after[(party, line)])
    return written


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
        bytes.fromhex(party) if (party := record[_FIELD["party"]]) else None,
        Jsonb(record),
    )


def _debt(party: bytes, line: str, since: float) -> Debt:
    return [bytes(party).hex(), line, since]
