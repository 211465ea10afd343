"""Pre-generate webhook bodies for wrk: realistic calls, per-connection order, optional signatures.

The file starts with `prefix\t<call id prefix>\trewritable\t<0|1>`, then one line per request:
`<connection>\t<event>\t<base64 signature or empty>\t<form body>`. Unsigned corpora are
rewritable: bench/lua/webhook.lua gives the call ids a new prefix each time it starts over.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exporter.simulate.traffic import PlannedEvent, TrafficPlanner, TrafficProfile

SEED: Final = 0xBE7C  # its hex form, the call id prefix, holds letters: no phone number matches
# A busy account: about 2,000 calls in progress at once, so that calls overlap on every connection.
BUSY_PROFILE: Final = TrafficProfile(calls_per_minute=1200.0)


@dataclass(frozen=True, slots=True)
class Corpus:
    """A written corpus: its file, how many requests per connection, signed or not."""

    path: Path
    connections: int
    events: int
    signed: bool


def throwaway_key() -> RSAPrivateKey:
    """A fresh RSA key for this run only; it is never written to disk."""
    return generate_private_key(public_exponent=65537, key_size=2048)


def write_public_key(key: RSAPrivateKey, path: Path) -> Path:
    """Write the PEM public key the exporter checks signatures with."""
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(pem)
    return path


def plan_connections(events: int, connections: int) -> list[list[PlannedEvent]]:
    """At least `events` events of whole calls, each call on one connection, in time order."""
    planner = TrafficPlanner(BUSY_PROFILE, SEED)
    lanes: list[list[PlannedEvent]] = [[] for _ in range(connections)]
    total = 0
    for index, call in enumerate(planner):
        lanes[index % connections].extend(call.events)
        total += len(call.events)
        if total >= events:
            break
    for lane in lanes:
        lane.sort(key=lambda event: event.at)  # stable: a call's events keep their order
    return lanes


def write_corpus(
    path: Path, events: int, connections: int, key: RSAPrivateKey | None = None
) -> Corpus:
    """Plan, optionally sign, and write a corpus of about `events` requests."""
    lanes = plan_connections(events, connections)
    prefix = f"{SEED:x}"
    with path.open("w", encoding="ascii") as file:
        file.write(f"prefix\t{prefix}\trewritable\t{0 if key else 1}\n")
        for line in _lines(lanes, key):
            file.write(line)
    return Corpus(path, connections, sum(map(len, lanes)), key is not None)


def _lines(lanes: list[list[PlannedEvent]], key: RSAPrivateKey | None) -> Iterator[str]:
    for connection, lane in enumerate(lanes):
        for event in lane:
            signature = _sign(key, event.body) if key else ""
            yield f"{connection}\t{event.name}\t{signature}\t{event.body.decode('ascii')}\n"


def _sign(key: RSAPrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, PKCS1v15(), SHA256())).decode("ascii")
