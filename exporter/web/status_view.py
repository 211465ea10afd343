"""What the status page shows, read at one moment: plain values, free of HTML."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

from exporter.domain.service_level import ServiceTargets

OK: Final = "ok"
WARNING: Final = "warning"
DANGER: Final = "danger"


@dataclass(frozen=True, slots=True)
class StatusSettings:
    """What the page says about the flags; service.py builds it from the Config."""

    verify_signature: bool = True
    allow_list: bool = False  # --webhook.allowed-networks is set
    listen_host: str = "127.0.0.1"
    public_url: bool = False  # --webhook.public-url is set, not derived per request
    state_path: str | None = None
    # With --state.url: the database (host:port/name, never a password) and this replica.
    state_database: str | None = None
    metrics_address: str | None = None  # --web.metrics-address, when /metrics is served apart
    grafana_url: str | None = None
    config_file: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One safety check: passed (`level` OK), or failed with what to do about it."""

    name: str
    level: str
    text: str
    fix: str = ""

    @classmethod
    def of(
        cls, name: str, passed: bool, ok: str, problem: str, fix: str, level: str = DANGER
    ) -> Check:
        """The check `name`, saying `ok` if it passed and `problem` and `fix` if not."""
        return cls(name, OK, ok) if passed else cls(name, level, problem, fix)


@dataclass(frozen=True, slots=True)
class Figures:
    """What was received: `today` counts since `since`, `totals` since the state began.

    Both are keyed `events`, `failed`, `calls:<direction>` and `refused:<reason>`.
    """

    now: float
    last_received: float  # unix time, 0.0 before the first event
    since: float
    since_start: bool  # `since` is the start of the exporter, not midnight
    today: Counter[str]
    totals: Counter[str]
    ringing: int
    talking: int


@dataclass(frozen=True, slots=True)
class Setup:
    """The lines, teams and thresholds in force; names only, never a number."""

    lines: tuple[str, ...]
    teams: tuple[str, ...]
    users: int | None  # per-user label values in use, None when per-user statistics are off
    targets: ServiceTargets
    line_targets: tuple[tuple[str, ServiceTargets], ...]  # lines that set their own


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything on the page."""

    webhook_url: str
    checks: tuple[Check, ...]
    figures: Figures
    setup: Setup
    settings: StatusSettings
