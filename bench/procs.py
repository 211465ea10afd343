"""Start the baseline and the exporter as real processes on loopback, and look at them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

REPO: Final = Path(__file__).resolve().parent.parent
HOST: Final = "127.0.0.1"
START_TIMEOUT: Final = 30.0


class ServerError(RuntimeError):
    """A server process did not come up; the message holds the end of its log."""


@dataclass
class Process:
    """A running server: its process, port and log file."""

    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    def rss_bytes(self) -> int:
        """Resident memory now, from /proc/PID/status."""
        return rss_bytes(self.popen.pid)

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far, all its threads together."""
        return cpu_seconds(self.popen.pid)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) and wait for the exit."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_baseline(workdir: Path, threads: int, signature_key: Path | None = None) -> Process:
    """Start bench/baseline.py (checking signatures with `signature_key`) until it answers."""
    process = launch_baseline(workdir, threads, signature_key)
    wait_ready(process)
    return process


def launch_baseline(workdir: Path, threads: int, signature_key: Path | None = None) -> Process:
    """Start bench/baseline.py without waiting for it."""
    port = free_port()
    argv = ["-m", "bench.baseline", "--port", str(port), "--threads", str(threads)]
    if signature_key is not None:
        argv.append(f"--signature-key={signature_key}")
    return _launch(argv, port, workdir / "baseline.log")


def start_exporter(workdir: Path, flags: Sequence[str], name: str = "exporter") -> Process:
    """Start the exporter with `flags` on a free loopback port and wait until it is ready."""
    process = launch_exporter(workdir, flags, name)
    wait_ready(process)
    return process


def launch_exporter(workdir: Path, flags: Sequence[str], name: str = "exporter") -> Process:
    """Start the exporter without waiting for it."""
    port = free_port()
    argv = ["-m", "exporter", f"--web.listen-address={HOST}:{port}", *flags]
    return _launch(argv, port, workdir / f"{name}.log", cwd=workdir)


def wait_ready(process: Process, timeout: float = START_TIMEOUT, poll: float = 0.005) -> float:
    """Poll /-/ready until it answers 200; return seconds since the process was started."""
    deadline = process.started + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise ServerError(f"server exited with {process.popen.returncode}: {_tail(process)}")
        if http_status(f"{process.url}/-/ready") == 200:
            return time.monotonic() - process.started
        time.sleep(poll)
    process.stop(kill=True)
    raise ServerError(f"server not ready after {timeout:.0f}s: {_tail(process)}")


def http_status(url: str) -> int | None:
    """The status of a GET, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def http_get(url: str, timeout: float = 10.0) -> bytes:
    """The body of a successful GET."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        body: bytes = reply.read()
        return body


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _launch(argv: list[str], port: int, log: Path, cwd: Path = REPO) -> Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    with log.open("ab") as out:
        popen = _popen([sys.executable, *argv], cwd, env, out)
    return Process(popen, port, log, started)


def _popen(
    argv: list[str], cwd: Path, env: dict[str, str], out: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
    )


def _tail(process: Process, lines: int = 10) -> str:
    text = process.log.read_text(errors="replace").splitlines()
    return " | ".join(text[-lines:])
