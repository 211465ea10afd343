"""Label values for lines, teams and users, each capped so that series stay bounded."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

OTHER: Final = "other"
LINE: Final = "line"
TEAM: Final = "team"
USER: Final = "user"
LABELS: Final = (LINE, TEAM, USER)
MAX_VALUE_LENGTH: Final = 64
# Names refused a label of their own that are remembered; past it, each is asked about again.
MAX_REFUSED: Final = 10_000


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """What the configuration file says about lines, teams and users."""

    lines: Mapping[str, str] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    # Thresholds of lines that set their own: line name to ServiceTargets field values.
    targets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    per_user: bool = False
    users: tuple[str, ...] | None = None  # an allow-list, or None for all users up to the cap
    max_lines: int = 50
    max_teams: int = 50
    max_users: int = 100


@dataclass(frozen=True, slots=True)
class LabelValues:
    """The line, team and user label values in use, to expose at 0 before they are counted."""

    lines: tuple[str, ...]
    teams: tuple[str, ...]
    users: tuple[str, ...]
    per_user: bool


def _first_distinct(values: list[str], limit: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))[:limit]


class Labeler:
    """Turns numbers and users into label values; folds values past a cap into `other`."""

    def __init__(self, config: LabelConfig, on_overflow: Callable[[str], None]) -> None:
        self.config = config
        self._on_overflow = on_overflow
        self.lines = _first_distinct(list(config.lines.values()), config.max_lines)
        self.teams = _first_distinct(list(config.teams.values()), config.max_teams)
        self._allowed_lines = frozenset(self.lines)
        self._allowed_teams = frozenset(self.teams)
        self._users: dict[str, None] = dict.fromkeys(config.users or ())
        self._refused: set[str] = set()  # by `admit`, for good
        # Asked before a user not seen yet gets a label of its own, by a store that keeps the
        # users' cap for several processes (and then calls `add_user`); None: this one does.
        self.admit: Callable[[str], bool] | None = None

    def reporting_to(self, on_overflow: Callable[[str], None]) -> Labeler:
        """This labeler, sharing its users seen so far, with overflows reported elsewhere."""
        other = copy.copy(self)
        other._on_overflow = on_overflow
        return other

    @property
    def users(self) -> tuple[str, ...]:
        """User label values in use, allow-listed or seen so far."""
        return tuple(self._users)

    def values(self) -> LabelValues:
        """The label values in use now."""
        return LabelValues(self.lines, self.teams, self.users, self.config.per_user)

    def line(self, number: str | None) -> str:
        """The line of a sipgate number."""
        name = self.config.lines.get(number or "")
        return self._capped(name, self._allowed_lines, LINE)

    def team(self, *user_keys: str | None) -> str:
        """The team of a user given by any of name, userId or fullUserId."""
        teams = self.config.teams
        name = next((teams[key] for key in user_keys if key and key in teams), None)
        return self._capped(name, self._allowed_teams, TEAM)

    def user(self, name: str | None) -> str | None:
        """The user label of a user name, or None when per-user statistics are off."""
        if not self.config.per_user:
            return None
        if not name:
            return OTHER
        name = name[:MAX_VALUE_LENGTH]
        if name in self._users:
            return name
        if self.config.users is not None or name in self._refused:
            return OTHER
        if self.admit is not None:
            admitted = self.admit(name)
        else:
            admitted = len(self._users) < self.config.max_users
            if admitted:
                self.add_user(name)
        if not admitted:
            self._on_overflow(USER)
            return OTHER
        return name

    def add_user(self, name: str) -> None:
        """Give `name` a label of its own from now on."""
        self._users[name] = None

    def refuse_user(self, name: str) -> None:
        """Count `name` as `other` from now on, without asking `admit` again."""
        if len(self._refused) < MAX_REFUSED:
            self._refused.add(name)

    def _capped(self, name: str | None, allowed: frozenset[str], label: str) -> str:
        if name is None:
            return OTHER
        if name not in allowed:
            self._on_overflow(label)
            return OTHER
        return name
