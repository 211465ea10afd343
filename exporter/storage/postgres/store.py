"""The shared store: each entry's effect committed in one PostgreSQL transaction.

`record(entry, apply)` opens a transaction and runs `apply` in it: the shared tracker and the
request counts find it with `current()`, read and write the rows they need, and hand what
they change in memory to `after_commit`, which runs only once the commit went through. Each
replica adds to its own counter rows, one set per worker thread (`shard`), so that its
workers never wait for each other's row locks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from exporter.domain.statistics import Statistics
from exporter.errors import CommitUnknownError, StateError, StateUnavailableError
from exporter.storage.health import DATABASE, StoreHealth
from exporter.storage.postgres import calls, clock, counters
from exporter.storage.postgres.connect import (
    Connection,
    configure_session,
    connect,
    connection_defaults,
    describe,
    failure,
    fetch_value,
    reason,
)
from exporter.storage.postgres.replica import claim_replica, release_replica
from exporter.storage.postgres.schema import advisory_key, migrate
from exporter.storage.store import Entry, Saved, State

log = logging.getLogger(__name__)
# The store logs an outage once, when it begins; the pool would log every attempt to connect.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

T = TypeVar("T")

# Conflicts between concurrent transactions that a second try resolves.
_RETRYABLE: Final = (errors.DeadlockDetected, errors.SerializationFailure, errors.UniqueViolation)
TRIES: Final = 3
# How long a request waits for a free connection before it is refused.
POOL_TIMEOUT: Final = 2.0
# A statement that waits longer for a lock (held by a replica that vanished, say), or at all
# (a database that stopped answering), is refused: sipgate gives up after about 10 s.
LOCK_TIMEOUT: Final = "5s"
STATEMENT_TIMEOUT: Final = "8s"
GAUGES_LOCK: Final = advisory_key("gauges")
CALLBACK_KEY: Final = "callback_key"
DEFAULT_RECORDS_RETENTION: Final = 30 * 86400.0
# How often the replica holding the gauges deletes call records past their retention.
CLEANUP_INTERVAL: Final = 60.0
_FORGET_RECORDS: Final = """
    DELETE FROM sipgate_exporter.calls WHERE ended_at < now() - make_interval(secs => %s)
"""
# Everything a transaction writes, sent at once: one round trip, with the commit.
_WRITE: Final = (
    "WITH doc AS (SELECT $1::jsonb AS d),\n"
    + ",\n".join((*calls.WRITES, counters.COUNT))
    + "\nSELECT 1"
)
# Prepared on each connection of the pool, run by name in simple queries that send BEGIN and
# COMMIT with them: two round trips for an event, not four (bench/RESULTS.md, "Replicas on
# PostgreSQL").
_WRITE_NAME: Final = "sipgate_write"
_PREPARED: Final = {
    calls.TAKE_NAME: ("text[], boolean", calls.TAKE),
    _WRITE_NAME: ("jsonb", _WRITE),
}


class Transaction:
    """One entry's transaction: its connection, the counter rows it adds, and what to do in
    memory once it committed. It begins with its first statement."""

    def __init__(self, connection: Connection, first_try: bool = True) -> None:
        self._connection = connection
        self.first_try = first_try  # False when a try before it failed on a conflict
        self.begun = False
        self.committing = False
        self.written: dict[str, list[Any]] = {part: [] for part in calls.PARTS}
        self.rows: list[counters.Row] = []
        self._after: list[Callable[[], None]] = []

    @property
    def connection(self) -> Connection:
        """The connection, in this transaction."""
        if not self.begun:
            self._connection.execute("BEGIN", prepare=False)
            self.begun = True
        return self._connection

    def prepared(self, name: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row of the prepared statement `name` run with `params`; the transaction
        begins with it, if it has not begun yet."""
        run = f"EXECUTE {name}({', '.join(['%s'] * len(params))})"
        cursor = psycopg.ClientCursor(self._connection)
        if self.begun:
            cursor.execute(run, params)
        else:
            self.begun = True
            cursor.execute(f"BEGIN; {run}", params)
            cursor.nextset()
        return cursor.fetchone()

    def now(self) -> float:
        """The database's clock, in unix seconds: one clock for every replica."""
        return float(fetch_value(self.connection, clock.NOW))

    def write(self, written: dict[str, list[Any]]) -> None:
        """Write `written` (calls.save's) at the end of this transaction, with the counters."""
        for name, values in written.items():
            self.written[name] += values

    def count(self, rows: list[counters.Row]) -> None:
        """Add `rows` to this replica's counters in this transaction."""
        self.rows += rows

    def commit(self, replica: str, shard: int) -> None:
        """Send what this transaction writes, in one statement, and the commit with it; a
        transaction that has neither begun nor anything to write sends nothing."""
        if not self.rows and not any(self.written.values()):
            if self.begun:
                self.committing = True
                self._connection.execute("COMMIT", prepare=False)
            return
        document = {
            **self.written,
            "counters": counters.added(self.rows),
            "replica": replica,
            "shard": shard,
        }
        # Not begun: the statement alone is a transaction, committed once it ran.
        self.committing = True
        commit = "; COMMIT" if self.begun else ""
        cursor = psycopg.ClientCursor(self._connection)
        cursor.execute(f"EXECUTE {_WRITE_NAME}(%s){commit}", (Jsonb(document),))

    def roll_back(self) -> None:
        """End a transaction that failed before its commit, if its connection still works."""
        if self.begun and not self._connection.broken:
            with contextlib.suppress(psycopg.Error):
                self._connection.execute("ROLLBACK", prepare=False)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the transaction committed; never if it did not."""
        self._after.append(action)

    def committed(self) -> None:
        """Run what waited for the commit."""
        for action in self._after:
            action()


class PostgresStore:
    """The state several replicas share in PostgreSQL; this replica's part of it."""

    def __init__(
        self,
        url: str,
        replica: str,
        workers: int,
        empty: Statistics,
        records_retention: float = DEFAULT_RECORDS_RETENTION,
    ) -> None:
        """Migrate the schema, claim `replica`, open a pool for `workers` threads; raise
        StateError, naming the database, if any of it fails. Call records older than
        `records_retention` seconds are deleted."""
        self.replica = replica
        self.health = StoreHealth(parts=(DATABASE,))
        self._url = url
        self._empty = empty
        self._local = threading.local()
        self._shards = itertools.count()
        self._gate = _Gate()
        self._stale = False
        self._reloads: list[Callable[[State], None]] = []
        self._maintenance: list[Callable[[], None]] = []
        self._workers = workers
        self._records_retention = records_retention
        self._next_cleanup = 0.0
        self.leader = False
        self.clock = clock.DatabaseClock()
        migrate(url)
        self._claim = connect(url)
        self.where = describe(self._claim)
        try:
            claim_replica(self._claim, replica)
            self.callback_key, dropped = self._set_up(replica, empty)
        except BaseException:
            self._claim.close()
            raise
        if dropped:
            log.warning(
                "replica %s: the histograms' buckets changed since its counts were kept; "
                "its wait, talk time and callback delay histograms start from zero",
                replica,
            )
        self._pool = ConnectionPool(
            url,
            min_size=1,
            # The webhook's workers, the sweeper, and the metrics server's two threads.
            max_size=workers + 3,
            kwargs={"autocommit": True, **connection_defaults(url)},
            configure=_configure,
            open=True,
            name="sipgate-exporter",
        )

    def _set_up(self, replica: str, empty: Statistics) -> tuple[bytes, bool]:
        """The callers' hashes' key, and whether the replica's histograms were dropped."""
        try:
            self.clock.measure(self._claim)
            key = _callback_key(self._claim)
            return key, counters.keep_buckets(self._claim, replica, empty)
        except psycopg.Error as error:
            raise failure(f"cannot set up replica {replica} on", self.where, error) from None

    def current(self) -> Transaction:
        """The transaction of the entry this thread records now."""
        transaction = self.recording()
        if transaction is None:
            raise RuntimeError("no transaction: changes to the shared state go through record()")
        return transaction

    def recording(self) -> Transaction | None:
        """The transaction of the entry this thread records now, if it records one."""
        transaction: Transaction | None = getattr(self._local, "transaction", None)
        return transaction

    def on_reload(self, reload: Callable[[State], None]) -> None:
        """Call `reload` with this replica's counters when they are read again from the
        database, after a commit whose outcome was unknown."""
        self._reloads.append(reload)

    def on_maintain(self, action: Callable[[], None]) -> None:
        """Call `action` at each maintenance, once the database answered; it may `record`."""
        self._maintenance.append(action)

    def load(self) -> Saved:
        """This replica's counters; calls in progress and debts stay in the database."""
        with self._pool.connection(timeout=POOL_TIMEOUT) as connection:
            return Saved(self._read(connection))

    def record(self, entry: Entry, apply: Callable[[], T]) -> T:
        """Run `apply` in a transaction and commit it; raise StateUnavailableError, having
        changed nothing, if the database cannot be reached or refuses."""
        conflicts = 0
        failure: Exception | None = None
        # Each broken connection the pool still holds may fail one try, before any commit.
        for _ in range(self._workers + TRIES):
            try:
                with self._gate.passing():
                    transaction, result = self._run(apply, first_try=conflicts == 0)
                    self.health.worked(DATABASE)
                    transaction.committed()
                return result
            except _Uncommitted as uncommitted:
                failure = uncommitted.error
                if isinstance(failure, _RETRYABLE):
                    conflicts += 1
                    if conflicts < TRIES:
                        continue
                elif uncommitted.broken:
                    continue
                raise self._failed(failure) from None
            except PoolTimeout as error:
                raise self._failed(error) from None
            except psycopg.Error as error:
                # The commit failed on its way: it may have gone through.
                raise self._failed(error, maybe_committed=True) from None
        raise self._failed(failure or RuntimeError("no try was made"))

    def maintain(self, export: Callable[[], State]) -> None:
        """Keep the replica's claim and last-seen time, take the gauges when nobody does, and
        read the counters again after an unknown commit; about once a second."""
        try:
            self._keep_claim()
            self.clock.measure(self._claim)
            if not self.leader:
                self.leader = bool(
                    fetch_value(self._claim, "SELECT pg_try_advisory_lock(%s)", (GAUGES_LOCK,))
                )
            if self._stale:
                self._reload()
            for action in self._maintenance:
                action()
            if self.leader and time.monotonic() >= self._next_cleanup:
                self._next_cleanup = time.monotonic() + CLEANUP_INTERVAL
                self._claim.execute(_FORGET_RECORDS, (self._records_retention,))
        except (psycopg.Error, PoolTimeout) as error:
            self.health.failed(DATABASE, self._unavailable(error))
        except StateError as error:
            self.health.failed(DATABASE, StateUnavailableError(str(error)))
        else:
            self.health.worked(DATABASE)

    def close(self, export: Callable[[], State] | None = None) -> None:
        """Release the pool and the replica's name; the state is in the database already."""
        self._pool.close()
        release_replica(self._claim, self.replica)
        self._claim.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection outside any entry's transaction, for reading."""
        with self._pool.connection(timeout=POOL_TIMEOUT) as connection:
            yield connection

    def _run(self, apply: Callable[[], T], first_try: bool) -> tuple[Transaction, T]:
        with self._pool.connection(timeout=POOL_TIMEOUT) as connection:
            transaction = Transaction(connection, first_try)
            try:
                self._local.transaction = transaction
                try:
                    result = apply()
                finally:
                    self._local.transaction = None
                transaction.commit(self.replica, self._shard())
            except psycopg.Error as error:
                # An error the server sent ended the transaction without a commit, the
                # commit's own included; a connection lost after the commit was sent leaves
                # its outcome unknown. Before that, on a broken connection, another try is safe.
                if transaction.committing and connection.broken:
                    raise
                transaction.roll_back()
                raise _Uncommitted(error, connection.broken) from error
            except BaseException:
                transaction.roll_back()
                raise
        return transaction, result

    def _shard(self) -> int:
        shard: int | None = getattr(self._local, "shard", None)
        if shard is None:
            shard = self._local.shard = next(self._shards)
        return shard

    def _read(self, connection: Connection) -> State:
        stats, requests = counters.read(connection, self.replica, self._empty)
        callbacks = {"key": self.callback_key.hex(), "debts": []}
        return {"stats": stats, "calls": [], "callbacks": callbacks, "requests": requests}

    def _reload(self) -> None:
        with self._gate.closed(), self._pool.connection(timeout=POOL_TIMEOUT) as connection:
            state = self._read(connection)
            for reload in self._reloads:
                reload(state)
            self._stale = False
        log.info("counters of replica %s read again from the state database", self.replica)

    def _failed(self, error: Exception, maybe_committed: bool = False) -> StateUnavailableError:
        unavailable = self._unavailable(error)
        if maybe_committed:
            self._stale = True  # read the counters again, to be sure
            unavailable = CommitUnknownError(str(unavailable))
        self.health.failed(DATABASE, unavailable)
        return unavailable

    def _unavailable(self, error: Exception) -> StateUnavailableError:
        why = reason(error) if isinstance(error, psycopg.Error) else "no connection free"
        return StateUnavailableError(f"cannot write to the state database {self.where}: {why}")

    def _keep_claim(self) -> None:
        """Note that the replica lives; claim its name again if its session was lost."""
        seen = "UPDATE sipgate_exporter.replicas SET last_seen = now() WHERE name = %s"
        if not self._claim.broken and not self._claim.closed:
            try:
                self._claim.execute(seen, (self.replica,))
                return
            except psycopg.OperationalError:
                if not self._claim.broken:
                    raise
        self._reclaim()
        self._claim.execute(seen, (self.replica,))

    def _reclaim(self) -> None:
        """Claim the replica's name again on a new session, the last one being lost; raise
        StateError if the database cannot be reached or another replica took the name."""
        self.leader = False  # the gauges lock went with the session
        with contextlib.suppress(psycopg.Error):
            self._claim.close()  # a session still alive would keep the name
        claim = connect(self._url)
        try:
            claim_replica(claim, self.replica)
        except StateError:
            claim.close()
            raise
        self._claim = claim
        log.info("replica %s claimed again on %s", self.replica, self.where)


def _configure(connection: Connection) -> None:
    configure_session(connection)
    # Whatever the server's default: each statement sees what committed before it began.
    connection.execute(
        "SELECT set_config('default_transaction_isolation', 'read committed', false)"
    )
    connection.execute("SELECT set_config('lock_timeout', %s, false)", (LOCK_TIMEOUT,))
    connection.execute("SELECT set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))
    # The same few prepared statements, whose plans do not depend on their values: plan them
    # once per connection (bench/RESULTS.md, "Replicas on PostgreSQL").
    connection.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', false)")
    for name, (types, statement) in _PREPARED.items():
        connection.execute(f"PREPARE {name} ({types}) AS {statement}")


def _callback_key(connection: Connection) -> bytes:
    """The key of the callers' hashes that every replica shares; made by the first."""
    connection.execute(
        "INSERT INTO sipgate_exporter.settings (name, value) VALUES (%s, %s) "
        "ON CONFLICT (name) DO NOTHING",
        (CALLBACK_KEY, secrets.token_hex(32)),
    )
    key = fetch_value(
        connection, "SELECT value FROM sipgate_exporter.settings WHERE name = %s", (CALLBACK_KEY,)
    )
    return bytes.fromhex(str(key))


class _Uncommitted(Exception):  # noqa: N818 -- a verdict on a transaction, not its failure
    """A transaction failed before its commit was sent: nothing was written; `broken` when
    its connection was lost."""

    def __init__(self, error: psycopg.Error, broken: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.broken = broken


class _Gate:
    """Transactions pass together; a reload of the counters waits until none is inside."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._inside = 0
        self._closed = False

    @contextlib.contextmanager
    def passing(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._closed)
            self._inside += 1
        try:
            yield
        finally:
            with self._condition:
                self._inside -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        with self._condition:
            self._closed = True
            self._condition.wait_for(lambda: self._inside == 0)
        try:
            yield
        finally:
            with self._condition:
                self._closed = False
                self._condition.notify_all()
