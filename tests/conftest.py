"""Shared fixtures: an injected clock, a fresh call tracker, RSA keys and exporter processes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from tests.http_helpers import free_port
from tests.programs import EXPIRE, EXPORTER, GRACE, Program, Start, launch

START = 1_800_000_000.0
FORWARD_GRACE = 10.0
EXPIRE_AFTER = 4 * 3600.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward and return the new time."""
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracker() -> CallTracker:
    return CallTracker(new_statistics(), forward_grace=FORWARD_GRACE, expire_after=EXPIRE_AFTER)


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    """The key that signs webhooks as sipgate would."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    """A key that is not the one the exporter under test trusts."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start exporters on free ports (unsigned events allowed, state in tmp); kill them after."""
    programs: list[Program] = []

    def run(*flags: str, env: Mapping[str, str] | None = None) -> Program:
        port = free_port()
        log = tmp_path / f"exporter-{len(programs)}.log"
        args = [
            *EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--calls.forward-grace={GRACE:g}s",
            f"--calls.expire-after={EXPIRE:g}s",
            "--webhook.verify-signature=false",  # these tests post unsigned events
            f"--state.path={tmp_path / f'state-{len(programs)}.db'}",
            *flags,
        ]
        program = launch(args, port, log, env=env)
        programs.append(program)
        program.wait_ready()
        return program

    yield run
    for program in programs:
        if program.process.poll() is None:
            program.process.kill()
        program.process.wait(timeout=10)
