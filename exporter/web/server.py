"""Serve a WSGI app with waitress, stop it gracefully, and run background sweeps."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Final

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

DRAIN_TIMEOUT: Final = 10.0
# How often the serving loop checks for a stop requested by a signal handler.
POLL_INTERVAL: Final = 0.25
# select(), waitress's default: poll() registers every socket anew on each turn of the loop,
# which in our measurements cost the I/O thread more per request and lengthened the tail.
# waitress's connection limit (100) keeps descriptors far below select's 1024.
USE_POLL: Final = False
# waitress answers a body over its own cap by itself, where the app cannot count it: the cap is a
# few times the app's limit, so that only absurd bodies go uncounted.
BODY_CAP_FACTOR: Final = 4
MAX_HEADER_BYTES: Final = 16 * 1024


class Server:
    """A waitress server whose `stop()` lets in-flight requests finish before it returns."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        threads: int,
        *,
        max_body_bytes: int = 64 * 1024,
        read_timeout: float = 10.0,
        serves: str = "HTTP",
    ) -> None:
        self._map: dict[int, Any] = {}
        # waitress reads each whole request in its I/O thread before a worker sees it, so a
        # slow client holds a connection, never a worker; read_timeout bounds its silences.
        self._server = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            ident="sipgate-exporter",
            # X-Forwarded-For reaches the app, which believes it only from trusted proxies.
            clear_untrusted_proxy_headers=False,
            max_request_body_size=max_body_bytes * BODY_CAP_FACTOR,
            max_request_header_size=MAX_HEADER_BYTES,
            channel_timeout=math.ceil(read_timeout),
            cleanup_interval=1,
        )
        self._serves = serves
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port, useful when asked for port 0."""
        return int(self._server.effective_port)

    def run(self) -> None:
        """Serve until `stop()`, then drain open requests and stop the workers."""
        log.info("serving %s on %s:%s", self._serves, self._server.effective_host, self.port)
        while not self._stopping:
            wasyncore.loop(timeout=POLL_INTERVAL, map=self._map, use_poll=USE_POLL, count=1)
        log.info("shutting down: finishing requests in flight")
        for dispatcher in list(self._map.values()):
            if isinstance(dispatcher, BaseWSGIServer):
                dispatcher.accepting = False
                dispatcher.del_channel()
                dispatcher.socket.close()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self._busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=USE_POLL, count=1)
        self._server.task_dispatcher.shutdown(timeout=DRAIN_TIMEOUT)
        wasyncore.close_all(self._map)

    def stop(self) -> None:
        """Ask `run()` to finish, from another thread; once is enough."""
        if not self._stopping:
            self._stopping = True
            # The loop may see the flag and close the trigger first; then it needs no wake-up.
            with contextlib.suppress(OSError):
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


class ServerGroup:
    """Several servers of one process that run and stop together."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = tuple(servers)

    def run(self) -> None:
        """Serve on all until `stop()`; the first runs in this thread, the others in their own."""
        first, *others = self.servers
        threads = [threading.Thread(target=server.run, name="server") for server in others]
        for thread in threads:
            thread.start()
        try:
            first.run()
        finally:
            for server in others:
                server.stop()
            for thread in threads:
                thread.join()

    def stop(self) -> None:
        """Ask every server to finish, from another thread."""
        for server in self.servers:
            server.stop()

    def stop_soon(self) -> None:
        """Like `Server.stop_soon`: safe in a signal handler."""
        for server in self.servers:
            server.stop_soon()


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
