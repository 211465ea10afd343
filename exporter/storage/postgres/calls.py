"""Calls in progress, their legs and the callback debts as rows, locked by the transaction that
changes them.

A call's row holds its whole record (`exporter/domain/records.py`) and, beside it, the columns
that sweeps and the gauges search by. Rows are locked in key order, so that transactions that
lock several never deadlock one another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import psycopg

from exporter.domain.calls import RINGING, TALKING, EndedCall
from exporter.domain.records import CALL_FIELD_NAMES
from exporter.storage.postgres.connect import Connection

# Calls and debts one sweep takes at most; the rest wait for the next second.
SWEEP_BATCH: Final = 500

# Locks the calls of the legs $1, then, if $2, their callers' debts, then reads the clock:
# the target list is evaluated in order, so the time is taken once the locks are held.
# Prepared on each connection (store.py) as TAKE_NAME.
TAKE_NAME: Final = "sipgate_take"
TAKE: Final = """
    SELECT
        (
            SELECT coalesce(jsonb_agg(record), '[]') FROM (
                SELECT c.record FROM sipgate_exporter.legs l
                JOIN sipgate_exporter.open_calls c ON c.call_id = l.call_id
                WHERE l.leg_id = ANY($1) ORDER BY c.call_id FOR UPDATE OF c
            ) AS locked
        ),
        (
            SELECT coalesce(jsonb_agg(jsonb_build_array(party, line, since)), '[]') FROM (
                SELECT encode(d.party, 'hex') AS party, d.line, d.since
                FROM sipgate_exporter.callback_debts d
                WHERE $2 AND d.party IN (
                    SELECT c.party FROM sipgate_exporter.legs l
                    JOIN sipgate_exporter.open_calls c ON c.call_id = l.call_id
                    WHERE l.leg_id = ANY($1)
                )
                ORDER BY d.party, d.line FOR UPDATE OF d
            ) AS owed
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
# Beyond a bound: the calls that saw no event for longest and the oldest debts.
_COUNTS: Final = """
    SELECT (SELECT count(*) FROM sipgate_exporter.open_calls),
        (SELECT count(*) FROM sipgate_exporter.callback_debts)
"""
_OLDEST_CALLS: Final = """
    SELECT record FROM sipgate_exporter.open_calls
    ORDER BY last_event_at, call_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
_OLDEST_DEBTS: Final = """
    SELECT party, line, since FROM sipgate_exporter.callback_debts
    ORDER BY since, party, line LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
# What a transaction changes in the calls, legs and debts, as parts of one statement that
# takes one JSON document `d` (store.py joins the parts): one parameter, encoded in C, where a
# parameter per column costs more than the statement's work (bench/RESULTS.md, "Replicas on
# PostgreSQL").
WRITES: Final = (
    """ended AS (
        DELETE FROM sipgate_exporter.open_calls
        WHERE call_id IN (SELECT jsonb_array_elements_text(d -> 'ended') FROM doc)
    )""",
    """saved AS (
        INSERT INTO sipgate_exporter.open_calls (
            call_id, direction, line, state, started_at, last_event_at, grace_until, party,
            caller, callee, record
        )
        SELECT c.call_id, c.direction, c.line, c.state, c.started_at, c.last_event_at,
            c.grace_until, decode(c.party, 'hex'), c.caller, c.callee, c.record
        FROM doc, jsonb_to_recordset(d -> 'calls') AS c(
            call_id text, direction text, line text, state text,
            started_at double precision, last_event_at double precision,
            grace_until double precision, party text, caller text, callee text, record jsonb
        )
        ON CONFLICT (call_id) DO UPDATE SET state = excluded.state,
            last_event_at = excluded.last_event_at, grace_until = excluded.grace_until,
            record = excluded.record
    )""",
    """legs AS (
        INSERT INTO sipgate_exporter.legs (leg_id, call_id)
        SELECT l.leg_id, l.call_id
        FROM doc, jsonb_to_recordset(d -> 'legs') AS l(leg_id text, call_id text)
    )""",
    """closed AS (
        DELETE FROM sipgate_exporter.callback_debts
        WHERE (party, line) IN (
            SELECT decode(x.party, 'hex'), x.line
            FROM doc, jsonb_to_recordset(d -> 'closed') AS x(party text, line text)
        )
    )""",
    # The rows of ended calls are read as they were before this statement deleted them.
    """recorded AS (
        INSERT INTO sipgate_exporter.calls (
            call_id, started_at, ended_at, direction, line, team, user_name, outcome,
            wait_seconds, talk_seconds, hangup_cause, caller, callee, party
        )
        SELECT r.call_id, to_timestamp(r.started_at), to_timestamp(r.ended_at), r.direction,
            r.line, r.team, r.user_name, r.outcome, r.wait_seconds, r.talk_seconds,
            r.hangup_cause, o.caller, o.callee, CASE WHEN r.keep_party THEN o.party END
        FROM doc, jsonb_to_recordset(d -> 'records') AS r(
            call_id text, started_at double precision, ended_at double precision,
            direction text, line text, team text, user_name text, outcome text,
            wait_seconds double precision, talk_seconds double precision, hangup_cause text,
            keep_party boolean
        )
        JOIN sipgate_exporter.open_calls o ON o.call_id = r.call_id
    )""",
    """opened AS (
        INSERT INTO sipgate_exporter.callback_debts (party, line, since)
        SELECT decode(x.party, 'hex'), x.line, x.since
        FROM doc,
            jsonb_to_recordset(d -> 'opened') AS x(party text, line text, since double precision)
        ON CONFLICT (party, line) DO NOTHING
    )""",
)
# The parts of the document WRITES reads.
PARTS: Final = ("ended", "calls", "legs", "records", "closed", "opened")

_FIELD: Final = {name: index for index, name in enumerate(CALL_FIELD_NAMES)}

# A debt as `Callbacks.export_state` writes it: [party in hex, line, since].
Debt = list[Any]


@dataclass(frozen=True, slots=True)
class Taken:
    """Calls and debts a transaction locked, as their records, to hand to a tracker."""

    calls: list[list[Any]]
    debts: list[Debt]

    @property
    def call_ids(self) -> list[str]:
        """The calls' ids."""
        return [record[_FIELD["call_id"]] for record in self.calls]

    @property
    def debt_keys(self) -> list[tuple[bytes, str]]:
        """The debts as a tracker's callbacks know them: (caller's hash, line)."""
        return [(bytes.fromhex(party), line) for party, line, _ in self.debts]

    def joined(self, other: Taken) -> Taken:
        """These calls and debts and those of `other` that are not among them."""
        ids = set(self.call_ids)
        keys = {(party, line) for party, line, _ in self.debts}
        return Taken(
            self.calls + [record for record in other.calls if record[_FIELD["call_id"]] not in ids],
            self.debts + [debt for debt in other.debts if (debt[0], debt[1]) not in keys],
        )

    @property
    def parties(self) -> list[bytes]:
        """The callers' hashes of the calls, for their debts."""
        found = (record[_FIELD["party"]] for record in self.calls)
        return sorted({bytes.fromhex(party) for party in found if party})


class Prepared(Protocol):
    """Runs the statements prepared on a connection (store.py's Transaction)."""

    def prepared(self, name: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row of the prepared statement `name` run with `params`."""


def take(statements: Prepared, leg_ids: Sequence[str], debts: bool) -> tuple[Taken, float]:
    """Lock and read the calls that have one of `leg_ids` as a leg, and with `debts` the
    debts owed to their callers, waiting for other transactions; and the database's time
    after that, in unix seconds."""
    row = statements.prepared(TAKE_NAME, [list(leg_ids), debts])
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


def take_beyond(
    connection: Connection,
    due: Taken,
    debts_cutoff: float,
    max_calls: int | None,
    max_debts: int,
) -> Taken:
    """Lock the calls in progress that saw no event for longest and the oldest debts, as many
    as are beyond `max_calls` and `max_debts` once the `due` calls and the debts opened before
    `debts_cutoff` have ended; skipping what other transactions hold."""
    row = connection.execute(_COUNTS).fetchone()
    open_calls, open_debts = row if row is not None else (0, 0)
    due_ids = set(due.call_ids)
    calls: list[list[Any]] = []
    if max_calls is not None:
        excess = min(open_calls - len(due_ids) - max_calls, SWEEP_BATCH)
        if excess > 0:
            # As many more as are due: those among the oldest are this transaction's already.
            rows = connection.execute(_OLDEST_CALLS, {"limit": excess + len(due_ids)})
            calls = [record for (record,) in rows if record[_FIELD["call_id"]] not in due_ids]
            calls = calls[:excess]
    expiring = {(party, line) for party, line, since in due.debts if since <= debts_cutoff}
    debts: list[Debt] = []
    excess = min(open_debts - len(expiring) - max_debts, SWEEP_BATCH)
    if excess > 0:
        rows = connection.execute(_OLDEST_DEBTS, {"limit": excess + len(expiring)})
        debts = [_debt(*row) for row in rows]
        debts = [debt for debt in debts if (debt[0], debt[1]) not in expiring][:excess]
    return Taken(calls, debts)


@dataclass(frozen=True, slots=True)
class Saved:
    """What a tracker made of the calls and debts a transaction took."""

    calls: list[list[Any]]  # the calls in progress still, as `export_state` writes them
    debts: list[Debt]  # the debts still owed
    ended: tuple[EndedCall, ...]  # the calls that ended
    at: float  # when, in unix seconds
    numbers: Mapping[str, tuple[str | None, str | None]]  # caller and callee of new calls
    cause: str | None = None  # the hangup cause that ended a call, if one did
    # Whether call records keep the hash of the other party's number, which matches them with
    # the callbacks owed; not when they keep no numbers at all.
    keep_party: bool = True


def save(before: Taken, saved: Saved) -> dict[str, list[Any]]:
    """The parts of WRITES' document that write what a tracker made of `before`."""
    after = {record[0]: record for record in saved.calls}
    legs_before = {leg[0] for record in before.calls for leg in record[-1]}
    owed_before = {(party, line) for party, line, _ in before.debts}
    owed_after = {(party, line): since for party, line, since in saved.debts}
    records = {record[0]: record for record in before.calls}
    return {
        "ended": [record[0] for record in before.calls if record[0] not in after],
        "calls": [_call_row(record, saved.numbers) for record in after.values()],
        "legs": [
            {"leg_id": leg[0], "call_id": call_id}
            for call_id, record in after.items()
            for leg in record[-1]
            if leg[0] not in legs_before
        ],
        "records": [
            _ended_row(records[call.call_id], call, saved)
            for call in saved.ended
            if call.call_id in records
        ],
        "closed": [
            {"party": party, "line": line}
            for party, line in sorted(owed_before - owed_after.keys())
        ],
        "opened": [
            {"party": party, "line": line, "since": owed_after[(party, line)]}
            for party, line in sorted(owed_after.keys() - owed_before)
        ],
    }


def _call_row(
    record: Sequence[Any], numbers: Mapping[str, tuple[str | None, str | None]]
) -> dict[str, Any]:
    field = dict(zip(CALL_FIELD_NAMES, record, strict=False))
    answered = field["person_answered"] or field["voicemail_answered"]
    caller, callee = numbers.get(field["call_id"], (None, None))
    return {
        "call_id": field["call_id"],
        "direction": field["direction"],
        "line": field["line"],
        "state": TALKING if answered else RINGING,
        "started_at": field["started_at"],
        "last_event_at": field["last_event_at"],
        "grace_until": field["grace_until"],
        "party": field["party"],
        "caller": caller,
        "callee": callee,
        "record": record,
    }


def _ended_row(record: Sequence[Any], call: EndedCall, saved: Saved) -> dict[str, Any]:
    """A call record of `call`, which ended at `saved.at`; `record` is the call before."""
    field = dict(zip(CALL_FIELD_NAMES, record, strict=False))
    return {
        "call_id": call.call_id,
        "started_at": field["started_at"],
        "ended_at": saved.at,
        "direction": call.direction,
        "line": field["line"],
        "team": field["team"],
        "user_name": field["user"],
        "outcome": call.outcome,
        "wait_seconds": call.wait,
        "talk_seconds": call.duration,
        "hangup_cause": saved.cause or field["last_cause"],
        "keep_party": saved.keep_party,
    }


def _debt(party: bytes, line: str, since: float) -> Debt:
    return [bytes(party).hex(), line, since]
