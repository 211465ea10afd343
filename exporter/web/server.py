"""Serve a WSGI app with waitress, stop it gracefully, and run background sweeps."""

from __future__ import annotations

import logging
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Final

from waitress.adjustments import Adjustments

from exporter.web.connections import ConnectionLimits, DroppedConnections, LimitedServer

log = logging.getLogger(__name__)

DRAIN_TIMEOUT: Final = 10.0
# How soon `run()` notices a stop asked for by a signal handler, which may not wake it.
POLL_INTERVAL: Final = 0.25
# How often a stopping server looks whether requests are still in flight.
DRAIN_CHECK_INTERVAL: Final = 0.05
# Once no request is in flight the workers are idle and exit at once; this only bounds a stuck one.
WORKER_EXIT_TIMEOUT: Final = 1.0
# waitress answers a body over its own cap by itself, where the app cannot count it: the cap is a
# few times the app's limit, so that only absurd bodies go uncounted.
BODY_CAP_FACTOR: Final = 4
MAX_HEADER_BYTES: Final = 16 * 1024


class Server:
    """A waitress server whose `run()` lets requests in flight finish once stopped."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        threads: int,
        *,
        max_body_bytes: int = 64 * 1024,
        read_timeout: float = 10.0,
        limits: ConnectionLimits | None = None,
        dropped: DroppedConnections | None = None,
        serves: str = "HTTP",
    ) -> None:
        # waitress reads each whole request in its I/O thread before a worker sees it, so a
        # slow client holds a connection, never a worker; `limits` bound how many and how long.
        limits = limits or ConnectionLimits()
        adjustments = Adjustments(
            host=host,
            port=port,
            threads=threads,
            ident="sipgate-exporter",
            # X-Forwarded-For reaches the app, which believes it only from trusted proxies.
            clear_untrusted_proxy_headers=False,
            max_request_body_size=max_body_bytes * BODY_CAP_FACTOR,
            max_request_header_size=MAX_HEADER_BYTES,
            # waitress counts its listening socket and its trigger as connections too.
            connection_limit=limits.max_connections + 2,
            # select() takes no descriptor past 1023.
            asyncore_use_poll=True,
        )
        self._server = LimitedServer(
            app, adjustments, limits, read_timeout, dropped or DroppedConnections()
        )
        self._serves = serves
        self._stopping = False
        self._stop_asked = threading.Event()
        self._loop_ended = False

    @property
    def port(self) -> int:
        """The bound port, useful when asked for port 0."""
        return int(self._server.effective_port)

    def run(self) -> None:
        """Serve until `stop()`; then stop accepting, let requests in flight finish and return."""
        log.info("serving %s on %s:%s", self._serves, self._server.effective_host, self.port)
        finisher = threading.Thread(
            target=self._finish_when_stopped, name="server-stop", daemon=True
        )
        finisher.start()
        try:
            self._server.run()  # until the finisher has closed every socket
        finally:
            self._loop_ended = True
            self.stop()
        finisher.join()

    def stop(self) -> None:
        """Ask `run()` to finish, from another thread; once is enough."""
        self._stopping = True
        self._stop_asked.set()

    def stop_soon(self) -> None:
        """Ask `run()` to finish within POLL_INTERVAL; takes no lock, so signal handlers may."""
        self._stopping = True

    def _finish_when_stopped(self) -> None:
        while not self._stopping:
            self._stop_asked.wait(POLL_INTERVAL)
        if not self._loop_ended:
            log.info("shutting down: finishing requests in flight")
            _Drain(self._server, lambda: self._loop_ended).run(DRAIN_TIMEOUT)


# waitress has no public way to stop gracefully (Pylons/waitress#372): its internals stay here.
class _Drain:
    """Stops a waitress server in steps, each run in its loop thread through its trigger."""

    def __init__(self, server: Any, loop_ended: Callable[[], bool]) -> None:
        self._server = server
        self._loop_ended = loop_ended

    def run(self, timeout: float) -> None:
        """Stop accepting, wait while requests are in flight, stop the workers, close it all."""
        deadline = time.monotonic() + timeout
        self._in_loop(self._stop_accepting)
        while self._in_loop(self._busy) and time.monotonic() < deadline:
            time.sleep(DRAIN_CHECK_INTERVAL)
        self._server.task_dispatcher.shutdown(timeout=WORKER_EXIT_TIMEOUT)
        self._in_loop(self._close)

    def _in_loop(self, step: Callable[[], bool]) -> bool:
        """What `step` answers in the loop thread; False if it fails or the loop has ended."""
        done = threading.Event()
        answers: list[bool] = []

        def thunk() -> None:
            try:
                answers.append(step())
            finally:
                done.set()

        self._server.trigger.pull_trigger(thunk)
        while not done.wait(DRAIN_CHECK_INTERVAL):
            if self._loop_ended():
                return False
        return bool(answers and answers[0])

    def _stop_accepting(self) -> bool:
        server = self._server
        # The kernel completes connections before they are accepted; closing the listening
        # socket would reset those, requests sent and all: they are taken in and served first.
        for _ in range(server.adj.backlog):
            if len(server._map) >= server.adj.connection_limit or not _pending(server.socket):
                break
            server.handle_accept()
        # Left out of the loop's select() first, so that select() never gets a closed socket.
        server.accepting = False
        server.socket.close()
        return True

    def _busy(self) -> bool:
        return any(
            channel.requests
            or channel.request is not None
            or channel.total_outbufs_len
            or has_unread_input(channel.socket)
            for channel in self._server.active_channels.values()
        )

    def _close(self) -> bool:
        # A worker still stuck sees its channel closed and no longer pulls the trigger closed next.
        for channel in list(self._server.active_channels.values()):
            channel.handle_close()
        self._server.close()  # the loop, left without sockets, ends
        return True


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


def _pending(listening: socket.socket) -> bool:
    """Whether a connection waits to be accepted on `listening`."""
    poller = select.poll()
    poller.register(listening, select.POLLIN)
    return bool(poller.poll(0))


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
