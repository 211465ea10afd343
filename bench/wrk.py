"""Run Debian's wrk with the Lua scripts in bench/lua and read back what they report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

LUA_DIR: Final = Path(__file__).resolve().parent / "lua"
RESULT_PREFIX: Final = "BENCH_RESULT "
# At a fixed rate wrk runs at this niceness, so that it yields the CPU to the server. On two
# shared cores its eight threads otherwise preempt whichever server thread holds the
# interpreter lock, and every server's p99 then measures the scheduler: in six paired runs the
# baseline's p99 was 2.4 ms with wrk at niceness 0 and 1.4 ms at 10. sipgate's requests come
# from another machine.
FIXED_RATE_NICENESS: Final = 10


class WrkError(RuntimeError):
    """wrk is missing, failed, or the server answered with errors."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run saw."""

    requests: int
    seconds: float
    socket_errors: int
    bad_status: int
    wraps: int
    newcall_us: tuple[float, ...]

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds


def wrk_binary() -> str:
    """The wrk executable; raise WrkError with a hint if it is not installed."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk not found: apt-get install -y wrk (make bench does this)")
    return path


def replay(
    url: str, corpus: Path, connections: int, seconds: int, rate_per_connection: float | None
) -> WrkResult:
    """Replay `corpus` on `connections` connections, flat out or at a fixed rate each."""
    env = {"BENCH_CORPUS": str(corpus)}
    niceness = 0
    if rate_per_connection is not None:
        env["BENCH_RATE"] = f"{rate_per_connection:.3f}"
        niceness = FIXED_RATE_NICENESS
    output = run_wrk(url, "webhook.lua", connections, seconds, env, niceness)
    return parse_result(output)


def run_wrk(
    url: str,
    script: str,
    connections: int,
    seconds: int,
    env: dict[str, str],
    niceness: int = 0,
) -> str:
    """Run wrk to completion, at `niceness` if not 0; return its stdout."""
    argv = _argv(url, script, connections, seconds)
    if niceness:
        argv = ["nice", "-n", str(niceness), *argv]
    done = subprocess.run(
        argv, env=_env(env), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def start_wrk(
    url: str, script: str, connections: int, seconds: int, env: dict[str, str]
) -> subprocess.Popen[str]:
    """Start wrk in the background; stop it with `interrupt`."""
    argv = _argv(url, script, connections, seconds)
    return subprocess.Popen(
        argv, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def interrupt(process: subprocess.Popen[str]) -> str:
    """Stop a background wrk as Ctrl-C would, and return its stdout."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=30)
    return stdout


def parse_result(output: str) -> WrkResult:
    """Read the `BENCH_RESULT` line webhook.lua prints; check for errors."""
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            data: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            break
    else:
        raise WrkError(f"no {RESULT_PREFIX.strip()} in wrk output: {output.strip()[-500:]}")
    result = WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        socket_errors=int(data["socket_errors"]),
        bad_status=int(data["bad_status"]),
        wraps=int(data["wraps"]),
        newcall_us=tuple(float(value) for value in data["newcall_us"]),
    )
    if result.bad_status or result.socket_errors:
        raise WrkError(
            f"{result.bad_status} non-200 answers and {result.socket_errors} socket errors "
            f"in {result.requests} requests"
        )
    return result


def _argv(url: str, script: str, connections: int, seconds: int) -> list[str]:
    # One thread per connection: each thread replays its own connection's events in order.
    return [
        wrk_binary(),
        f"-t{connections}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout=10s",
        "-s",
        str(LUA_DIR / script),
        f"{url}/webhook",
    ]


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "BENCH_LUA": str(LUA_DIR), **extra}
