"""haproxy with the repository's haproxy/haproxy.cfg, its servers on loopback: for the tests and
the benchmark (bench/replicas.py)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Final

from tests.http_helpers import try_fetch, wait_for

REPO: Final = Path(__file__).resolve().parent.parent
CONFIG: Final = REPO / "haproxy" / "haproxy.cfg"
HOST: Final = "127.0.0.1"
START_TIMEOUT: Final = 30.0


def haproxy_config(port: int, servers: Sequence[int]) -> str:
    """The shipped configuration listening on `port`, with `exporter-N:9850` at `servers`."""
    text = CONFIG.read_text().replace("bind :9860", f"bind {HOST}:{port}")
    for number, server in enumerate(servers, start=1):
        text = text.replace(f"exporter-{number}:9850", f"{HOST}:{server}")
    return text


@contextlib.contextmanager
def running_haproxy(workdir: Path, port: int, servers: Sequence[int]) -> Iterator[None]:
    """haproxy in front of `servers`, until the block ends; ready once it found one of them
    ready (its health check is /-/ready)."""
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(port, servers))
    program = shutil.which("haproxy") or "/usr/sbin/haproxy"
    with (workdir / "haproxy.log").open("ab") as log:
        process = subprocess.Popen(
            [program, "-db", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        wait_for(partial(_ready, process, f"http://{HOST}:{port}/-/ready"), START_TIMEOUT)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _ready(process: subprocess.Popen[bytes], url: str) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"haproxy exited with {process.returncode}")
    reply = try_fetch(url)
    return reply is not None and reply.status == 200
