"""The users with a label of their own, shared by the replicas so that their cap is one."""

from __future__ import annotations

from typing import Final

from exporter.storage.postgres.connect import Connection, fetch_value
from exporter.storage.postgres.schema import advisory_key

USERS_LOCK: Final = advisory_key("users")
_ADMIT: Final = """
    WITH added AS (
        INSERT INTO sipgate_exporter.users (name)
        SELECT %(name)s WHERE (SELECT count(*) FROM sipgate_exporter.users) < %(max)s
        ON CONFLICT (name) DO NOTHING
        RETURNING name
    )
    SELECT EXISTS (SELECT FROM added)
        OR EXISTS (SELECT FROM sipgate_exporter.users WHERE name = %(name)s)
"""


def admit(connection: Connection, name: str, max_users: int) -> bool:
    """Whether `name` has a label of its own: it had one, or it is added while fewer than
    `max_users` have one. In the caller's transaction, which it serialises with the others
    that add a user until it ends."""
    # In a statement of its own: the next one's snapshot then sees what the last holder added.
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (USERS_LOCK,))
    return bool(fetch_value(connection, _ADMIT, {"name": name, "max": max_users}))
