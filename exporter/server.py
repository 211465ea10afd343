"""Serve a WSGI app with waitress, stop it gracefully, and run background sweeps."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

DRAIN_TIMEOUT: Final = 10.0
# How often the serving loop checks for a stop requested by a signal handler.
POLL_INTERVAL: Final = 0.25


class Server:
    """A waitress server whose `stop()` lets in-flight requests finish before it returns."""

    def __init__(self, app: Any, host: str, port: int, threads: int) -> None:
        self._map: dict[int, Any] = {}
        self._server = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            ident="sipgate-exporter",
            clear_untrusted_proxy_headers=False,
        )
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port, useful when asked for port 0."""
        return int(self._server.effective_port)

    def run(self) -> None:
        """Serve until `stop()`, then drain open requests and stop the workers."""
        log.info("listening on %s:%s", self._server.effective_host, self.port)
        while not self._stopping:
            wasyncore.loop(timeout=POLL_INTERVAL, map=self._map, use_poll=True, count=1)
        log.info("shutting down: finishing requests in flight")
        for dispatcher in list(self._map.values()):
            if isinstance(dispatcher, BaseWSGIServer):
                dispatcher.accepting = False
                dispatcher.del_channel()
                dispatcher.socket.close()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self._busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        self._server.task_dispatcher.shutdown(timeout=DRAIN_TIMEOUT)
        wasyncore.close_all(self._map)

    def stop(self) -> None:
        """Ask `run()` to finish, from another thread."""
        self._stopping = True
        self._server.pull_trigger()

    def stop_soon(self) -> None:
        """Ask `run()` to finish within POLL_INTERVAL; takes no lock, so signal handlers may."""
        self._stopping = True

    def _busy(self) -> bool:
        return any(
            channel.requests
            or channel.request is not None
            or channel.total_outbufs_len
            or has_unread_input(channel.socket)
            for channel in self._server.active_channels.values()
        )


def has_unread_input(sock: socket.socket) -> bool:
    """Whether a request waits in the kernel that waitress has not read yet."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing to read (BlockingIOError) or the connection is gone
        return False


class Sweeper(threading.Thread):
    """Calls `sweep` about once a second until stopped."""

    def __init__(self, sweep: Callable[[], None], interval: float = 1.0) -> None:
        super().__init__(name="sweeper", daemon=True)
        self._sweep = sweep
        self._interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._sweep()
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        """Stop after the current sweep."""
        self._stopped.set()


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Call `stop` on SIGTERM and SIGINT; `stop` must not take locks or log."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
