"""A TCP forwarder on loopback that a test can cut and restore, as a network would fail."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from tests.http_helpers import free_port


class TcpProxy:
    """Forwards connections from its own port to `target_port`; `cut()` closes every one and
    refuses new ones until `restore()`."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self._target = (host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = False

    def start(self) -> None:
        """Accept connections (again)."""
        listener = socket.create_server((self.host, self.port), reuse_port=False)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener and every connection through it."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        for sock in [listener, *sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def restore(self) -> None:
        """Accept connections again after `cut()`."""
        self.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def proxy_to(port: int) -> Iterator[TcpProxy]:
    """A started proxy to `port`, cut at the end."""
    proxy = TcpProxy(port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.cut()
