"""A replica's counters as rows: one per series, histogram bucket or sum, added to at each commit.

The rows are written from the plain data of `Statistics.to_dict` and
`WebhookRequests.export_state`, and read back into it, so the domain knows nothing of them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

from exporter.domain.statistics import Statistics
from exporter.storage.postgres.connect import Connection

# The bucket number of a counter's value or a histogram's sum; buckets count from 0.
VALUE: Final = -1
# Kept as the latest, not added up.
LAST_RECEIVED: Final = "last_received"
_HISTOGRAMS: Final = ("wait", "duration", "callback_delay")
_SCALARS: Final = ("dtmf_events", "evicted", "callbacks_dropped", LAST_RECEIVED)
_REQUESTS: Final = ("requests", "rejected")
_NO_LABELS: Final = "[]"

# (name, labels as JSON, bucket, value)
Row = tuple[str, str, int, float]

# Adds to a replica's rows, as a part of the statement that store.py sends at each commit.
COUNT: Final = """counted AS (
    INSERT INTO sipgate_exporter.counters AS c (replica, shard, name, labels, bucket, value)
    SELECT d ->> 'replica', (d ->> 'shard')::integer, x.name, x.labels, x.bucket, x.value
    FROM doc, jsonb_to_recordset(d -> 'counters') AS x(
        name text, labels text, bucket integer, value double precision
    )
    ON CONFLICT (replica, shard, name, labels, bucket) DO UPDATE SET value = CASE
        WHEN c.name = 'last_received' THEN greatest(c.value, excluded.value)
        ELSE c.value + excluded.value
    END
)"""
READ = """
    SELECT name, labels, bucket, sum(value), max(value) FROM sipgate_exporter.counters
    WHERE replica = %s GROUP BY name, labels, bucket
"""


_BUCKETS_OF: Final = "SELECT buckets FROM sipgate_exporter.replicas WHERE name = %s"
_SET_BUCKETS: Final = "UPDATE sipgate_exporter.replicas SET buckets = %s WHERE name = %s"
_DROP_HISTOGRAMS: Final = (
    "DELETE FROM sipgate_exporter.counters WHERE replica = %s AND name = ANY(%s)"
)


def keep_buckets(connection: Connection, replica: str, empty: Statistics) -> bool:
    """Note the histograms' buckets of `empty` as the replica's; if its rows were counted in
    other buckets, delete its histogram rows first (as a state file's are dropped). True if
    it deleted them."""
    buckets = [empty.wait_buckets, empty.duration_buckets, empty.callback_delay_buckets]
    current = json.dumps(buckets)
    with connection.transaction():
        row = connection.execute(_BUCKETS_OF, (replica,)).fetchone()
        stored = row[0] if row else None
        dropped = stored is not None and stored != current
        if dropped:
            connection.execute(_DROP_HISTOGRAMS, (replica, list(_HISTOGRAMS)))
        if stored != current:
            connection.execute(_SET_BUCKETS, (current, replica))
    return dropped


def rows(stats: dict[str, Any], requests: dict[str, Any]) -> list[Row]:
    """The non-zero rows of `Statistics.to_dict()` and `WebhookRequests.export_state()`."""
    found: list[Row] = []
    for name, values in stats.items():
        if name in _HISTOGRAMS:
            found += _histogram_rows(name, values)
        elif name in _SCALARS:
            if values:
                found.append((name, _NO_LABELS, VALUE, float(values)))
        elif isinstance(values, list) and name != "buckets":
            found += [(name, labels(key), VALUE, float(n)) for key, n in values if n]
    for name in _REQUESTS:
        found += [(name, labels(key), VALUE, float(n)) for key, n in requests.get(name, ()) if n]
    return found


def added(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """COUNT's part of the document that adds `rows`: summed by key first, and in key order."""
    summed: dict[tuple[str, str, int], float] = defaultdict(float)
    for name, text, bucket, value in rows:
        key = (name, text, bucket)
        summed[key] = max(summed[key], value) if name == LAST_RECEIVED else summed[key] + value
    return [
        {"name": name, "labels": text, "bucket": bucket, "value": summed[(name, text, bucket)]}
        for name, text, bucket in sorted(summed)
    ]


def read(
    connection: Connection, replica: str, empty: Statistics
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replica's counters over all its shards, as `Statistics.to_dict()` and
    `WebhookRequests.export_state()` data; `empty` gives the histograms' buckets."""
    stats = empty.to_dict()
    requests: dict[str, Any] = {name: [] for name in _REQUESTS}
    histograms: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    sizes = {
        "wait": len(empty.wait_buckets) + 1,
        "duration": len(empty.duration_buckets) + 1,
        "callback_delay": len(empty.callback_delay_buckets) + 1,
    }
    for name, text, bucket, total, latest in connection.execute(READ, (replica,)):
        if name in _HISTOGRAMS:
            counts, sums = histograms.setdefault((name, text), ([0] * sizes[name], [0.0]))
            if bucket == VALUE:
                sums[0] = total
            elif bucket < len(counts):
                counts[bucket] = int(total)
        elif name == LAST_RECEIVED:
            stats[name] = latest
        elif name in _SCALARS:
            stats[name] = int(total)
        elif name in _REQUESTS:
            requests[name].append([json.loads(text), int(total)])
        elif name in stats:
            stats[name].append([json.loads(text), int(total) if total.is_integer() else total])
    for (name, text), (counts, sums) in histograms.items():
        key = json.loads(text)
        stats[name].append(
            [*key, counts, sums[0]] if name != "callback_delay" else [key, counts, sums[0]]
        )
    return stats, requests


def _histogram_rows(name: str, values: list[list[Any]]) -> list[Row]:
    found: list[Row] = []
    for *key, counts, total in values:
        text = labels(key[0] if name == "callback_delay" else key)
        found += [(name, text, bucket, float(n)) for bucket, n in enumerate(counts) if n]
        if any(counts):
            found.append((name, text, VALUE, float(total)))
    return found


def labels(key: Any) -> str:
    """Label values as the rows keep them: JSON."""
    return json.dumps(list(key) if isinstance(key, (list, tuple)) else key)
