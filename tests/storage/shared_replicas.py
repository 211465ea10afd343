"""Replicas sharing one state database, wired in this process as exporter/service.py wires them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import bottle
import pytest
from prometheus_client.samples import Sample

from exporter.config.command_line import parse_config
from exporter.domain.calls import Handled
from exporter.domain.events import parse_event
from exporter.recorder import Recorder
from exporter.service import build_tracker, open_recorder, open_shared
from exporter.storage.postgres.store import PostgresStore
from tests.http_helpers import registry_samples
from tests.in_process import InProcess, build


@dataclass
class Replica:
    """One replica: its store, recorder and apps."""

    name: str
    store: PostgresStore
    parts: InProcess

    @property
    def recorder(self) -> Recorder:
        return self.parts.recorder

    @property
    def app(self) -> bottle.Bottle:
        return self.parts.app

    def post(self, body: str) -> Handled:
        """Record one event body, as the webhook does after its checks."""
        data = body.encode()
        return self.recorder.event(parse_event(data), data, self.recorder.clock())

    def sweep(self) -> None:
        """What the sweeper does each second."""
        self.recorder.sweep(self.recorder.clock())
        self.recorder.maintain()

    def samples(self) -> list[Sample]:
        """What /metrics shows now."""
        return registry_samples(self.parts.registry)

    def close(self) -> None:
        self.recorder.close()


@dataclass
class Replicas:
    """Starts replicas on `url` with common flags; closes the ones still open at the end."""

    url: str
    flags: tuple[str, ...] = ()
    started: list[Replica] = field(default_factory=list)

    def start(self, name: str, *flags: str) -> Replica:
        """A replica named `name`, started as the exporter starts one."""
        config = parse_config(
            [
                f"--state.url={self.url}",
                f"--state.replica={name}",
                "--webhook.verify-signature=false",
                *self.flags,
                *flags,
            ],
            {},
        )
        shared = open_shared(config)
        assert shared is not None
        recorder = open_recorder(config, build_tracker(config, shared), shared)
        replica = Replica(name, shared, build(recorder=recorder))
        self.started.append(replica)
        return replica

    def stop(self, replica: Replica) -> None:
        """Stop `replica` as SIGTERM would."""
        self.started.remove(replica)
        replica.close()

    def close(self) -> None:
        for replica in self.started:
            replica.close()
        self.started.clear()


def summed(replicas: Iterable[Replica], name: str, **labels: str) -> float:
    """A metric's samples matching `labels`, summed over every replica: the account's figure."""
    return sum(
        sample.value
        for replica in replicas
        for sample in replica.samples()
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
def replicas(state_url: str) -> Iterator[Replicas]:
    """Replicas on a new, empty database."""
    started = Replicas(state_url)
    yield started
    started.close()
