"""Two replicas sharing PostgreSQL behind haproxy, against one embedded exporter in the same run.

PostgreSQL runs with its flushes on (every commit durable), haproxy with the repository's
haproxy/haproxy.cfg. Each repetition gets a new database and new replicas, since a corpus
replayed again would repeat its call ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from bench.load import Workspace
from bench.procs import HOST, Process, free_port, start_exporter
from bench.stats import median
from bench.targets import DURABLE, exporter_flags
from bench.wrk import WrkResult, replay
from tests.haproxy import running_haproxy
from tests.postgres_cluster import Cluster, running_cluster

EMBEDDED: Final = "embedded"
REPLICAS: Final = "replicas"


@dataclass
class Replicated:
    """Per repetition: throughput flat out and newCall latencies at `rate`, by target."""

    throughput: dict[str, list[float]] = field(default_factory=dict)
    samples: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)
    rate: float = 0.0


def measure(space: Workspace) -> Replicated:
    """Throughput, then newCall latency at a quarter of the slower one's, of both targets."""
    result = Replicated()
    settings = space.settings
    with running_cluster(durable=True) as cluster:
        for repetition in range(settings.repetitions):
            for target in _order(repetition):
                run = _run(space, cluster, target, None, settings.seconds)
                result.throughput.setdefault(target, []).append(run.throughput)
        slowest = min(median(values) for values in result.throughput.values())
        result.rate = max(float(settings.connections), round(slowest * settings.latency_load, -1))
        per_connection = result.rate / settings.connections
        for repetition in range(settings.latency_repetitions):
            for target in _order(repetition):
                run = _run(space, cluster, target, per_connection, settings.latency_seconds)
                if not run.newcall_us:
                    raise RuntimeError(f"no newCall answered by the {target} at {result.rate}/s")
                result.samples.setdefault(target, []).append(
                    tuple(value / 1e6 for value in run.newcall_us)
                )
    return result


def _order(repetition: int) -> tuple[str, str]:
    return (EMBEDDED, REPLICAS) if repetition % 2 == 0 else (REPLICAS, EMBEDDED)


def _run(
    space: Workspace, cluster: Cluster, target: str, rate: float | None, seconds: int
) -> WrkResult:
    corpus = space.unsigned
    with _serving(space, cluster, target) as url:
        run = replay(url, corpus.path, corpus.connections, seconds, rate)
    if run.socket_errors or run.bad_status:
        raise RuntimeError(f"the {target} failed {run.socket_errors + run.bad_status} requests")
    return run


@contextlib.contextmanager
def _serving(space: Workspace, cluster: Cluster, target: str) -> Iterator[str]:
    """The URL of a fresh embedded exporter with durable state, or of haproxy in front of two
    fresh replicas on a new database."""
    threads = space.settings.threads
    if target == EMBEDDED:
        server = start_exporter(
            space.workdir, exporter_flags(DURABLE, space.workdir, threads, space.public_key)
        )
        try:
            yield server.url
        finally:
            server.stop()
        return
    url = cluster.url_for(cluster.create_database())
    flags = [
        f"--web.threads={threads}",
        "--state.path=",
        f"--state.url={url}",
        "--webhook.verify-signature=false",
    ]
    replicas: list[Process] = []
    try:
        for name in ("exporter-1", "exporter-2"):
            replicas.append(
                start_exporter(space.workdir, [*flags, f"--state.replica={name}"], name)
            )
        port = free_port()
        with running_haproxy(space.workdir, port, [replica.port for replica in replicas]):
            yield f"http://{HOST}:{port}"
    finally:
        for replica in replicas:
            replica.stop()
