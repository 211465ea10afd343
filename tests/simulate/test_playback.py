"""Playing planned calls over HTTP: everything sent is counted, failures too."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time

import pytest

from exporter.domain.tracker import CallTracker
from exporter.simulate.playback import RefusedError, play
from exporter.simulate.sender import Sender
from exporter.simulate.traffic import TrafficPlanner, TrafficProfile
from tests.http_helpers import free_port


def test_simulated_run_over_http_is_counted_as_sent(exporter_url: tuple[str, CallTracker]) -> None:
    url, tracker = exporter_url
    profile = TrafficProfile(calls_per_minute=6000, median_wait=1.0, median_talk=5.0)
    progress = io.StringIO()
    tally = play(
        TrafficPlanner(profile, seed=5),
        Sender(url),
        speed=200.0,
        max_calls=300,
        progress=progress,
        progress_interval=0.2,
    )
    assert not tally.errors
    assert sum(tally.calls.values()) == 300
    assert tally.in_flight == 0
    # Let forwards that never continued run out of grace.
    tracker.sweep(time.time() + tracker.forward_grace)
    recorded = {key[:2]: n for key, n in tracker.stats.calls_ended.items() if n}
    assert recorded == dict(tally.calls)
    assert tracker.open_calls == 0
    assert "calls started" in progress.getvalue()
    summary = tally.summary()
    assert "total                    300" in summary
    assert "callbacks: called_back 0, called_again 0, still owed " in summary
    assert "errors: none" in summary


def test_a_refused_connection_stops_playback() -> None:
    with pytest.raises(RefusedError, match="connection refused"):
        play(
            TrafficPlanner(TrafficProfile(calls_per_minute=6000), seed=1),
            Sender(f"http://127.0.0.1:{free_port()}/webhook", timeout=1.0),
            speed=1000.0,
            max_calls=3,
        )


def test_a_dropped_connection_is_counted_not_raised() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def drop_every_connection() -> None:
            with contextlib.suppress(OSError):
                while True:
                    listener.accept()[0].close()

        threading.Thread(target=drop_every_connection, daemon=True).start()
        tally = play(
            TrafficPlanner(TrafficProfile(calls_per_minute=6000), seed=1),
            Sender(f"http://127.0.0.1:{port}/webhook", timeout=1.0),
            speed=1000.0,
            max_calls=3,
        )
    assert tally.errors["connection"] > 0
    assert sum(tally.calls.values()) == 0
