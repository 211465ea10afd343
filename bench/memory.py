"""Resident memory of the exporter with many open calls: newCalls that never hang up."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.procs import Process, http_get, start_baseline, start_exporter
from bench.scrape import sample_sum
from bench.wrk import interrupt, start_wrk

FEED_TIMEOUT: Final = 300
SETTLE: Final = 0.5
# No cap and no state: memory of the calls themselves.
FLAGS: Final = ("--state.path=", "--webhook.verify-signature=false", "--calls.max-open=100000000")


@dataclass(frozen=True, slots=True)
class Memory:
    """RSS in bytes: baseline idle, and the exporter by number of open calls."""

    baseline: int
    by_open_calls: dict[int, int]

    def bytes_per_call(self) -> float:
        """Growth from no open calls to the most, per call."""
        most = max(self.by_open_calls)
        return (self.by_open_calls[most] - self.by_open_calls[0]) / most


def measure(workdir: Path, steps: tuple[int, ...], connections: int, threads: int) -> Memory:
    """RSS of an idle baseline, then of one exporter at 0 and each of `steps` open calls."""
    baseline = start_baseline(workdir, threads)
    try:
        http_get(f"{baseline.url}/metrics")
        time.sleep(SETTLE)
        baseline_rss = baseline.rss_bytes()
    finally:
        baseline.stop()
    exporter = start_exporter(workdir, [f"--web.threads={threads}", *FLAGS], "memory")
    try:
        http_get(f"{exporter.url}/metrics")
        time.sleep(SETTLE)
        rss = {0: exporter.rss_bytes()}
        for number, target in enumerate(steps):
            _feed(exporter, target, target - max(rss), connections, f"m{number}")
            time.sleep(SETTLE)
            rss[target] = exporter.rss_bytes()
    finally:
        exporter.stop()
    return Memory(baseline_rss, rss)


def _feed(exporter: Process, total: int, more: int, connections: int, tag: str) -> None:
    """Open `more` calls with wrk and wait until the exporter holds `total`."""
    quota = -(-more // connections)
    env = {"BENCH_QUOTA": str(quota), "BENCH_TAG": tag}
    wrk = start_wrk(exporter.url, "newcalls.lua", connections, FEED_TIMEOUT, env)
    deadline = time.monotonic() + FEED_TIMEOUT
    try:
        while _open_calls(exporter) < total:
            if time.monotonic() > deadline or wrk.poll() is not None:
                raise RuntimeError(f"only {_open_calls(exporter):.0f} of {total} calls opened")
            time.sleep(0.2)
    finally:
        interrupt(wrk)


def _open_calls(exporter: Process) -> float:
    return sample_sum(exporter.url, "sipgate_calls_active")
