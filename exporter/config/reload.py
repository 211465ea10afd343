"""The configuration file: loaded at start, reloaded on SIGHUP or POST /-/reload."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporter.config.file import load_label_config
from exporter.domain.labels import LabelConfig
from exporter.errors import ConfigFileError

log = logging.getLogger(__name__)

SUCCESS: Final = "success"
FAILURE: Final = "failure"
OUTCOMES: Final = (SUCCESS, FAILURE)


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """How reloading went so far."""

    outcomes: dict[str, int]
    last_successful: bool
    last_success_time: float


def summary(config: LabelConfig) -> str:
    """What a configuration sets up, counted as the metrics see it: by distinct names."""
    lines = _counted(len(set(config.lines.values())), "line")
    teams = _counted(len(set(config.teams.values())), "team")
    return f"{lines}, {teams}, per-user statistics {'on' if config.per_user else 'off'}"


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


class ConfigReloader:
    """Applies the file through `apply`; a bad file keeps the configuration in force."""

    def __init__(self, path: Path, apply: Callable[[LabelConfig], None]) -> None:
        self.path = path
        self._apply = apply
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter()
        self._last_successful = True
        self._last_success_time = 0.0
        # Set by a signal handler, which must not take locks; the sweeper acts on it.
        self.requested = False

    def load(self) -> None:
        """Apply the file at start; raise ConfigFileError if it is bad."""
        config = load_label_config(self.path)
        self._apply(config)
        self._last_success_time = time.time()
        log.info("configuration loaded from %s: %s", self.path, summary(config))

    def reload(self) -> tuple[bool, str]:
        """Apply the file again; return whether it worked and a one-line message."""
        with self._lock:
            self.requested = False
            try:
                config = load_label_config(self.path)
            except ConfigFileError as error:
                self._outcomes[FAILURE] += 1
                self._last_successful = False
                log.error("configuration reload failed, keeping the previous one: %s", error)
                return False, str(error)
            self._apply(config)
            self._outcomes[SUCCESS] += 1
            self._last_successful = True
            self._last_success_time = time.time()
            log.info("configuration reloaded from %s: %s", self.path, summary(config))
            return True, f"reloaded {self.path}"

    def reload_if_requested(self) -> None:
        """Reload when a signal asked for it."""
        if self.requested:
            self.reload()

    def status(self) -> ReloadStatus:
        """A consistent copy of the reload outcomes."""
        with self._lock:
            outcomes = {outcome: self._outcomes[outcome] for outcome in OUTCOMES}
            return ReloadStatus(outcomes, self._last_successful, self._last_success_time)
