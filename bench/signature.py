"""In-process cost of one signature check: the bench's key against sipgate's key size.

The signed corpus uses a 2,048-bit throwaway key, because signing tens of thousands of bodies
with a 4,096-bit key would take minutes; sipgate signs with 4,096 bits, whose check costs more.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.hashes import SHA256

from exporter.web.guard import Guard, sipgate_public_key

BODY = b"event=newCall&direction=in&from=494441872331&to=4921112345671&callId=be7c-0000001"


@dataclass
class Signatures:
    """Seconds per check, per repetition, by key size in bits."""

    by_bits: dict[int, list[float]]


def measure(repetitions: int, checks: int) -> Signatures:
    """Time `Guard.check_body` with a valid signature for 2,048 bits and for sipgate's size."""
    sizes = (2048, sipgate_public_key().key_size)
    result = Signatures({bits: [] for bits in sizes})
    for bits in sizes:
        key = generate_private_key(public_exponent=65537, key_size=bits)
        guard = Guard(signature_key=key.public_key())
        signature = base64.b64encode(key.sign(BODY, PKCS1v15(), SHA256())).decode()
        for _ in range(repetitions):
            started = time.perf_counter()
            for _ in range(checks):
                guard.check_body(BODY, signature)
            result.by_bits[bits].append((time.perf_counter() - started) / checks)
    return result
