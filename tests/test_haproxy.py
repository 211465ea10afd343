"""Replicas behind a real haproxy: one stopped and started again mid-stream, nothing refused."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http_helpers import fetch, free_port, try_fetch, wait_for
from tests.postgres import postgres, state_url
from tests.programs import Program
from tests.replica_programs import (
    ReplicaPrograms,
    assert_same_statistics,
    planned_events,
    replica_programs,
)

__all__ = ["postgres", "replica_programs", "state_url"]

SEED = 32
CALLS = 120
REPO = Path(__file__).resolve().parent.parent
# The configuration the compose profile "ha" runs, with loopback addresses for its services.
CONFIG = REPO / "haproxy" / "haproxy.cfg"


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[HaproxyStarter]:
    starter = HaproxyStarter(tmp_path)
    yield starter
    starter.stop()


class HaproxyStarter:
    """Runs haproxy in the foreground in front of some exporters."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._process: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, backends: dict[str, int]) -> None:
        """Run the shipped configuration with each `name:9850` server at its port here."""
        program = shutil.which("haproxy") or "/usr/sbin/haproxy"
        text = CONFIG.read_text().replace("bind :9860", f"bind 127.0.0.1:{self.port}")
        for name, port in backends.items():
            text = text.replace(f"{name}:9850", f"127.0.0.1:{port}")
        config = self._root / "haproxy.cfg"
        config.write_text(text)
        log = (self._root / "haproxy.log").open("wb")
        self._process = subprocess.Popen(
            [program, "-db", "-f", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        wait_for(lambda: (reply := try_fetch(self.base + "/-/ready")) and reply.status == 200, 10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


def test_a_replica_restarted_behind_haproxy_loses_no_request(
    replica_programs: ReplicaPrograms, haproxy: HaproxyStarter
) -> None:
    events = planned_events(CALLS, SEED)
    single = replica_programs.start(None)
    first, second = replica_programs.start("first"), replica_programs.start("second")
    haproxy.start({"exporter-1": first.port, "exporter-2": second.port})
    stopped_at, started_at = len(events) // 3, len(events) * 2 // 3
    statuses = []
    replacement: Program | None = None
    for index, body in enumerate(events):
        if index == stopped_at:
            first.process.send_signal(signal.SIGTERM)  # an upgrade: stop, then start again
        if index == started_at:
            assert first.process.wait(timeout=10) == 0, first.stderr
            replacement = replica_programs.start("first", port=first.port, ready=False)
        statuses.append(fetch(haproxy.base + "/webhook", body).status)
        assert fetch(single.base + "/webhook", body).status == 200
    assert statuses == [200] * len(events)
    assert replacement is not None
    replacement.wait_ready()

    assert_same_statistics(single, [replacement, second])
