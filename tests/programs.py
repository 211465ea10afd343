"""Run the exporter as a real process on a free port, for tests that need the whole program."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.samples import Sample

from tests.http_helpers import fetch, text_samples, try_fetch, wait_for

GRACE = 1.0
EXPIRE = 2.0
# The sweeper runs about once a second; allow for it plus a scrape.
SWEEP_SLACK = 1.6
EXPORTER = [sys.executable, "-m", "exporter"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPGATE_EXPORTER_")}
    env.update(COLUMNS="200", PYTHONUNBUFFERED="1", **extra)
    return env


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line an exporter that refused its configuration wrote, checked to exit with 2."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@dataclass
class Program:
    """A running exporter process and where it writes its log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"exporter exited early:\n{self.stderr}"
            reply = try_fetch(self.base + "/-/ready")
            return reply is not None and reply.status == 200

        wait_for(ready, timeout=15)

    def samples(self) -> list[Sample]:
        reply = fetch(self.base + "/metrics")
        assert reply.status == 200
        return text_samples(reply.text)

    def post(self, body: str) -> None:
        assert fetch(self.base + "/webhook", body).status == 200


def launch(
    args: Sequence[str],
    port: int,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Program:
    """Start `args`, an exporter listening on `port`, writing its output to `log`."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=clean_env(**(env or {})),
            cwd=cwd,
        )
    return Program(process, port, log)


Start = Callable[..., Program]
