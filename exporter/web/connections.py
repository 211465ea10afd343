"""Limits on the connections a waitress server holds: from whom, how many, and for how long."""

from __future__ import annotations

import functools
import logging
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Any, Final

from waitress.server import TcpWSGIServer

from exporter.web.guard import Network, parse_address, within

log = logging.getLogger(__name__)

SOURCE: Final = "source"
PER_CLIENT: Final = "per_client"
REQUEST_TIMEOUT: Final = "request_timeout"
READ_TIMEOUT: Final = "read_timeout"
# Closed between requests after the read timeout: ordinary keep-alive housekeeping, not counted.
IDLE: Final = "idle"
DROP_REASONS: Final = (SOURCE, PER_CLIENT, REQUEST_TIMEOUT, READ_TIMEOUT)
_EXPLAINED: Final = {
    SOURCE: "refused: its address is not in --webhook.allowed-networks",
    PER_CLIENT: "refused: its address holds --web.max-connections-per-client connections",
    REQUEST_TIMEOUT: "closed: its request did not arrive within --web.request-timeout",
    READ_TIMEOUT: "closed: it sent nothing for --web.read-timeout in the middle of a request",
}
# How often open connections are held against the timeouts.
SWEEP_INTERVAL: Final = 1.0
# Peers whose exemption from the cap per client is remembered; past it, the memory restarts.
MAX_PEERS_KNOWN: Final = 4096
# Files a process needs beside its connections: listening sockets, state files, logs, relay.
RESERVED_FILES: Final = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Which connections a server accepts, and how long a request may take to arrive.

    Peers in `uncapped` (trusted reverse proxies, which carry many clients' requests, and the
    allow-list, from which sipgate pushes every event) are not capped per address; trusted
    proxies also pass the allow-list, and the app checks the client they name instead.
    """

    max_connections: int = 1000
    max_per_client: int = 32
    request_timeout: float = 10.0
    allowed_networks: tuple[Network, ...] | None = None
    uncapped: tuple[Network, ...] = ()
    proxies: tuple[Network, ...] = ()

    def refusal(self, peer: str, open_from: Callable[[str], int]) -> str | None:
        """Why a new connection from `peer` is refused, or None to accept it.

        `open_from(peer)` counts the connections `peer` holds already; it is asked last.
        """
        address = parse_address(peer)
        if address is not None and within(address, self.proxies):
            return None
        if self.allowed_networks is not None and (
            address is None or not within(address, self.allowed_networks)
        ):
            return SOURCE
        if self.capped(peer) and open_from(peer) >= self.max_per_client:
            return PER_CLIENT
        return None

    def capped(self, peer: str) -> bool:
        """Whether `peer`'s connections count toward the cap per client."""
        address = parse_address(peer)
        return address is None or not within(address, (*self.proxies, *self.uncapped))


class DroppedConnections:
    """Thread-safe counts of connections refused or closed by the limits, by reason."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, reason: str, peer: str) -> None:
        """Count one and log it: the first of each reason at warning, later ones at debug."""
        with self._lock:
            self._counts[reason] += 1
            first = self._counts[reason] == 1
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "connection from %s %s", peer, _EXPLAINED[reason])

    def read(self) -> Counter[str]:
        """A copy of the counts."""
        with self._lock:
            return self._counts.copy()


@dataclass(slots=True)
class _Seen:
    """What a channel looked like at the last sweep, and since when, by the monotonic clock."""

    activity: float
    active_at: float
    request: Any
    request_at: float


class Timeouts:
    """Finds connections whose request takes too long to arrive, or that fell silent.

    waitress stamps a channel's activity with the wall clock, which can step; this notes only
    *that* the stamp, or the request being read, changed since the last sweep, and measures
    from then by the monotonic clock: a second late at most, never an hour.
    """

    def __init__(self, request_timeout: float, read_timeout: float) -> None:
        self._request_timeout = request_timeout
        self._read_timeout = read_timeout
        self._seen: dict[Any, _Seen] = {}

    def expired(self, channels: Iterable[Any], now: float) -> list[tuple[Any, str]]:
        """The channels to close at monotonic time `now`, each with its reason."""
        seen: dict[Any, _Seen] = {}
        expired = []
        for channel in channels:
            mark = seen[channel] = self._look(channel, now)
            # A request that a worker answers is never cut off; its reply goes out whole.
            if channel.requests:
                continue
            reason = self._reason(channel.request is not None, mark, now)
            if reason is not None:
                expired.append((channel, reason))
        self._seen = seen  # forgets the channels closed since
        return expired

    def _look(self, channel: Any, now: float) -> _Seen:
        mark = self._seen.get(channel)
        if mark is None:
            return _Seen(channel.last_activity, now, channel.request, now)
        if channel.last_activity != mark.activity:
            mark.activity, mark.active_at = channel.last_activity, now
        if channel.request is not mark.request:
            mark.request, mark.request_at = channel.request, now
        return mark

    def _reason(self, reading: bool, mark: _Seen, now: float) -> str | None:
        if reading and now - mark.request_at >= self._request_timeout:
            return REQUEST_TIMEOUT
        if now - mark.active_at >= self._read_timeout:
            return READ_TIMEOUT if reading else IDLE
        return None


# waitress has no cap per address, no deadline for a whole request (its channel_timeout only
# measures silence, which trickling resets), no check at accept, and its sweep follows the
# wall clock; this adds them in its two hooks for that, accept() and readable().
class LimitedServer(TcpWSGIServer):  # type: ignore[misc]
    """A waitress TCP server that refuses connections by its limits and closes slow ones."""

    def __init__(
        self,
        app: Any,
        adjustments: Any,
        limits: ConnectionLimits,
        read_timeout: float,
        dropped: DroppedConnections,
    ) -> None:
        self._limits = limits
        self._timeouts = Timeouts(limits.request_timeout, read_timeout)
        self._dropped = dropped
        self._next_sweep = 0.0
        self._capped_peers: dict[str, bool] = {}  # asked at each accept, for every connection
        super().__init__(app, adj=adjustments)

    def accept(self) -> tuple[Any, Any] | None:
        """The next connection, unless the limits refuse it: then it is closed unread."""
        accepted = super().accept()
        if accepted is None:
            return None
        connection, address = accepted
        peer = str(address[0])
        reason = self._limits.refusal(peer, self._open_from)
        if reason is None:
            return (connection, address)
        self._dropped.count(reason, peer)  # before the peer can see it closed
        connection.close()
        return None

    def readable(self) -> bool:
        """Sweep once a second, then whatever waitress answers; its loop asks every turn."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            self._sweep(now)
        return bool(super().readable())

    def maintenance(self, now: float) -> None:
        """Nothing: `_sweep` does waitress's sweep, by the monotonic clock."""

    def _sweep(self, now: float) -> None:
        for channel, reason in self._timeouts.expired(list(self.active_channels.values()), now):
            channel.will_close = True  # the loop closes it at its next turn
            if reason != IDLE:
                self._dropped.count(reason, str(channel.addr[0]))

    def _open_from(self, peer: str) -> int:
        client = client_of(peer)
        peers = [str(channel.addr[0]) for channel in list(self.active_channels.values())]
        # Exempt peers (a load balancer, say) in the same IPv6 /64 count for nobody.
        return sum(1 for other in peers if client_of(other) == client and self._capped(other))

    def _capped(self, peer: str) -> bool:
        capped = self._capped_peers.get(peer)
        if capped is None:
            if len(self._capped_peers) >= MAX_PEERS_KNOWN:
                self._capped_peers.clear()
            capped = self._capped_peers[peer] = self._limits.capped(peer)
        return capped


@functools.lru_cache(maxsize=4096)
def client_of(peer: str) -> str:
    """The client that `peer` counts for in the cap per client: its IPv4 address, or the /64
    network of an IPv6 one, since one subscriber is given a whole /64 to pick addresses from."""
    address = parse_address(peer)
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return peer if address is None else str(address)


def fit_connection_limit(max_connections: int, servers: int) -> int:
    """The connection limit of each of `servers` servers that the open-files limit allows.

    Raises the soft limit toward the hard one first; logs when `max_connections` does not fit,
    because past the limit every accept() fails and waitress would spin logging it.
    """
    wanted = servers * max_connections + RESERVED_FILES
    available = _raise_open_files(wanted)
    fitting = max(1, (available - RESERVED_FILES) // servers)
    if fitting < max_connections:
        log.warning(
            "only %d files may be open (ulimit -n): at most %d connections on each listening "
            "address, not --web.max-connections=%d; raise the hard limit to %d to allow them all",
            available,
            fitting,
            max_connections,
            wanted,
        )
    return min(max_connections, fitting)


def _raise_open_files(wanted: int) -> int:
    """The soft limit of open files, raised toward `wanted` up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return int(soft)
    return int(target)
