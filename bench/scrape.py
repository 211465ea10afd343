"""Prometheus-style scrapes: how long /metrics takes, a scraper thread, and reading samples."""

from __future__ import annotations

import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from bench.procs import http_get
from bench.stats import median


def render_seconds(url: str, samples: int) -> tuple[float, int, int]:
    """Median seconds to GET /metrics, and the page's bytes and series."""
    times, body = [], b""
    for _ in range(samples):
        started = time.perf_counter()
        body = http_get(f"{url}/metrics")
        times.append(time.perf_counter() - started)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return median(times), len(body), series


def sample_sum(url: str, name: str) -> float:
    """The sum of all samples named `name` on the /metrics page."""
    text = http_get(f"{url}/metrics").decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


class Scraper(threading.Thread):
    """GETs /metrics every `interval` seconds, on a fixed schedule, until stopped."""

    def __init__(self, url: str, interval: float = 1.0) -> None:
        super().__init__(name="scraper", daemon=True)
        self._url = f"{url}/metrics"
        self._interval = interval
        self._stopped = threading.Event()
        self.durations: list[float] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stopped.wait(max(0.0, next_at - time.monotonic())):
            started = time.perf_counter()
            http_get(self._url)
            self.durations.append(time.perf_counter() - started)
            next_at += self._interval

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stopped.set()
        self.join()
