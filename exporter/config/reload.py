"""The configuration file: loaded at start, reloaded on SIGHUP or POST /-/reload."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.config.file import load_label_config
from exporter.domain.tracker import CallTracker
from exporter.errors import ConfigFileError

log = logging.getLogger(__name__)

OUTCOMES: Final = ("success", "failure")


class ConfigReloader(Collector):
    """Applies the file to the tracker; a bad file keeps the configuration in force."""

    def __init__(self, path: Path, tracker: CallTracker) -> None:
        self.path = path
        self._tracker = tracker
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter()
        self._last_successful = True
        self._last_success_time = 0.0
        # Set by a signal handler, which must not take locks; the sweeper acts on it.
        self.requested = False

    def load(self) -> None:
        """Apply the file at start; raise ConfigFileError if it is bad."""
        self._tracker.configure_labels(load_label_config(self.path))
        self._last_success_time = time.time()

    def reload(self) -> tuple[bool, str]:
        """Apply the file again; return whether it worked and a one-line message."""
        with self._lock:
            self.requested = False
            try:
                config = load_label_config(self.path)
            except ConfigFileError as error:
                self._outcomes["failure"] += 1
                self._last_successful = False
                log.error("configuration reload failed, keeping the previous one: %s", error)
                return False, str(error)
            self._tracker.configure_labels(config)
            self._outcomes["success"] += 1
            self._last_successful = True
            self._last_success_time = time.time()
            log.info(
                "configuration reloaded from %s: %d lines, %d teams",
                self.path,
                len(config.lines),
                len(config.teams),
            )
            return True, f"reloaded {self.path}"

    def reload_if_requested(self) -> None:
        """Reload when a signal asked for it."""
        if self.requested:
            self.reload()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            outcomes = {outcome: self._outcomes[outcome] for outcome in OUTCOMES}
            successful, success_time = self._last_successful, self._last_success_time
        reloads = CounterMetricFamily(
            "sipgate_config_reloads_total", "Configuration reloads, by outcome.", labels=["outcome"]
        )
        for outcome, count in outcomes.items():
            reloads.add_metric([outcome], count)
        yield reloads
        yield GaugeMetricFamily(
            "sipgate_config_last_reload_successful",
            "Whether the last configuration reload worked (1) or failed (0).",
            value=1 if successful else 0,
        )
        yield GaugeMetricFamily(
            "sipgate_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            value=success_time,
        )
