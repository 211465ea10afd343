"""An exporter on a free port for the simulator to send to."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from exporter.domain.tracker import CallTracker
from exporter.web.server import Server
from tests.in_process import build, new_tracker

GRACE = 10.0
EXPIRE = 4 * 3600.0


@pytest.fixture
def exporter_url() -> Iterator[tuple[str, CallTracker]]:
    tracker = new_tracker(forward_grace=GRACE, expire_after=EXPIRE)
    server = Server(build(tracker).app, "127.0.0.1", 0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/webhook", tracker
    server.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()
