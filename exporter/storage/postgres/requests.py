"""Webhook request counts of a replica, added to its counter rows in each entry's transaction."""

from __future__ import annotations

import threading
from collections import Counter

from exporter.errors import CommitUnknownError, StateError
from exporter.storage.postgres import counters
from exporter.storage.postgres.store import PostgresStore
from exporter.storage.store import ERROR, Entry, State
from exporter.web.requests import INVALID, WebhookRequests


class SharedRequests(WebhookRequests):
    """WebhookRequests whose counts are kept in the database with the entry that made them."""

    def __init__(self, store: PostgresStore, buckets: tuple[float, ...]) -> None:
        super().__init__(buckets)
        self._store = store
        # Requests that failed because the database did: counted by this process until the
        # database answers again.
        self._unkept: Counter[tuple[str, int]] = Counter()
        self._unkept_lock = threading.Lock()
        store.on_reload(self._reload)
        store.on_maintain(self._keep_unkept)

    def count(self, event: str, status: int) -> None:
        """Count one request in the entry's transaction; outside one (a request that failed
        because the database did), in this process until the database answers again."""
        transaction = self._store.recording()
        if transaction is None:
            with self._unkept_lock:
                self._unkept[(event, status)] += 1
                super().count(event, status)
            return
        transaction.count(
            [("requests", counters.labels([event, str(status)]), counters.VALUE, 1.0)]
        )
        transaction.after_commit(lambda: super(SharedRequests, self).count(event, status))

    def count_rejection(self, reason: str, status: int) -> None:
        """Count a refused request in the entry's transaction."""
        transaction = self._store.current()
        transaction.count(
            [
                ("requests", counters.labels([INVALID, str(status)]), counters.VALUE, 1.0),
                ("rejected", counters.labels(reason), counters.VALUE, 1.0),
            ]
        )
        transaction.after_commit(
            lambda: super(SharedRequests, self).count_rejection(reason, status)
        )

    def _keep_unkept(self) -> None:
        """Add the requests counted by this process alone to its counter rows."""
        with self._unkept_lock:
            unkept = self._unkept.copy()
            self._unkept -= unkept
        if not unkept:
            return
        rows = [
            ("requests", counters.labels([event, str(status)]), counters.VALUE, float(times))
            for (event, status), times in unkept.items()
        ]
        try:
            self._store.record(Entry(ERROR, 0.0), lambda: self._store.current().count(rows))
        except CommitUnknownError:
            raise  # kept or lost: the counters read again say which, and count nothing twice
        except StateError:
            with self._unkept_lock:
                self._unkept += unkept  # nothing was written: the next maintenance tries again
            raise

    def _reload(self, state: State) -> None:
        with self._unkept_lock:
            durations = self.read().duration
            self.restore_state(state["requests"])
            with self._lock:  # what only this process keeps, added back
                self._duration = durations
                for (event, status), times in self._unkept.items():
                    self._requests[(event, str(status))] += times
