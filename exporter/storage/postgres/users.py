"""The users with a label of their own, shared by the replicas so that their cap is one."""

from __future__ import annotations

from enum import Enum
from typing import Final

from exporter.storage.postgres.connect import Connection, fetch_value
from exporter.storage.postgres.schema import advisory_key

USERS_LOCK: Final = advisory_key("users")
_LOOK: Final = """
    SELECT EXISTS (SELECT FROM sipgate_exporter.users WHERE name = %(name)s),
        (SELECT count(*) FROM sipgate_exporter.users)
"""
_ADD: Final = """
    WITH added AS (
        INSERT INTO sipgate_exporter.users (name)
        SELECT %(name)s WHERE (SELECT count(*) FROM sipgate_exporter.users) < %(max)s
        ON CONFLICT (name) DO NOTHING
        RETURNING name
    )
    SELECT EXISTS (SELECT FROM added)
        OR EXISTS (SELECT FROM sipgate_exporter.users WHERE name = %(name)s)
"""


class Admission(Enum):
    """What became of a user's claim to a label of its own."""

    KEPT = "kept"  # it had one, committed: known for good
    ADDED = "added"  # it has one once the caller's transaction commits
    REFUSED = "refused"  # the cap is reached, and users are never removed: refused for good


def admit(connection: Connection, name: str, max_users: int) -> Admission:
    """Whether `name` has a label of its own, added while fewer than `max_users` have one.

    Only an addition takes the lock that serialises additions, held until the caller's
    transaction ends; looking up a known or refused name does not wait for it.
    """
    row = connection.execute(_LOOK, {"name": name}).fetchone()
    if row is not None and row[0]:
        return Admission.KEPT
    if row is not None and row[1] >= max_users:
        return Admission.REFUSED
    # In a statement of its own: the next one's snapshot then sees what the last holder added.
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (USERS_LOCK,))
    added = fetch_value(connection, _ADD, {"name": name, "max": max_users})
    return Admission.ADDED if added else Admission.REFUSED
