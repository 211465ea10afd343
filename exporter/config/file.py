"""Read the YAML configuration file into a LabelConfig; every error names its line and key."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NoReturn

import yaml

from exporter.config.values import BOOL_SPELLINGS, parse_bool, parse_duration
from exporter.domain.labels import MAX_VALUE_LENGTH, OTHER, LabelConfig
from exporter.errors import ConfigFileError

# sipgate sends E.164 digits: a leading 0 (030…, 0049…) is a national or dialled form that
# never matches.
_NUMBER: Final = re.compile(r"[1-9]\d{2,19}")
_LABEL_VALUE: Final = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_VALUE_LENGTH}}}")
_LIMITS: Final = {"lines": "max_lines", "teams": "max_teams", "users": "max_users"}
# Keys of a line's own thresholds, and the ServiceTargets fields they set.
_TARGETS: Final = {"service_level_target": "answer_within", "short_abandon": "short_abandon"}
_TARGET_KEYS: Final = ", ".join(_TARGETS)


def load_label_config(path: Path) -> LabelConfig:
    """Parse and validate the file at `path`; raise ConfigFileError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigFileError(f"{path}: cannot read: {reason or error}") from None
    return _Reader(str(path)).read(text)


class _Reader:
    def __init__(self, name: str) -> None:
        self._name = name

    def read(self, text: str) -> LabelConfig:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigFileError(f"{self._name}{line}: invalid YAML: {problem}") from None
        if root is None:
            return LabelConfig()
        values: dict[str, Any] = {}
        for key, node in self._mapping(root, "the file"):
            if key == "lines":
                values["lines"], values["targets"] = self._lines(node)
            elif key == "teams":
                values["teams"] = self._names(node, key, self._user_key)
            elif key == "per_user":
                values.update(self._per_user(node))
            elif key == "limits":
                values.update(self._limits(node))
            else:
                self._fail(node, key, "unknown key; use lines, teams, per_user, limits")
        config = LabelConfig(**values)
        users = config.users or ()
        if len(users) > config.max_users:
            self._fail(root, "per_user.users", f"{len(users)} users, more than limits.users")
        return config

    def _names(
        self, node: yaml.Node, where: str, check_key: Callable[[yaml.Node, str, str], None]
    ) -> dict[str, str]:
        names = {}
        for key, value in self._mapping(node, where):
            check_key(value, f"{where}.{key}", key)
            names[key] = self._label_value(value, f"{where}.{key}")
        return names

    def _lines(self, node: yaml.Node) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        """Numbers to line names; a number may be a mapping that sets its line's thresholds."""
        names: dict[str, str] = {}
        targets: dict[str, dict[str, float]] = {}
        for number, value in self._mapping(node, "lines"):
            where = f"lines.{number}"
            self._number(value, where, number)
            if not isinstance(value, yaml.MappingNode):
                names[number] = self._label_value(value, where)
                continue
            fields = dict(self._mapping(value, where))
            if "line" not in fields:
                self._fail(value, where, "a mapping needs line: and may set " + _TARGET_KEYS)
            names[number] = line = self._label_value(fields.pop("line"), f"{where}.line")
            for key, field_node in fields.items():
                if key not in _TARGETS:
                    self._fail(
                        field_node, f"{where}.{key}", f"unknown key; use line, {_TARGET_KEYS}"
                    )
                seconds = self._duration(field_node, f"{where}.{key}")
                known = targets.setdefault(line, {}).setdefault(_TARGETS[key], seconds)
                if known != seconds:
                    self._fail(field_node, f"{where}.{key}", f"line {line!r} has another {key}")
        return names, targets

    def _duration(self, node: yaml.Node, where: str) -> float:
        try:
            return parse_duration(str(node.value) if isinstance(node, yaml.ScalarNode) else "")
        except ValueError as error:
            self._fail(node, where, str(error))

    def _per_user(self, node: yaml.Node) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in self._mapping(node, "per_user"):
            where = f"per_user.{key}"
            if key == "enabled":
                values["per_user"] = self._bool(value, where)
            elif key == "users":
                if not isinstance(value, yaml.SequenceNode):
                    self._fail(value, where, "must be a list of user names")
                users = [self._label_value(item, where) for item in value.value]
                values["users"] = tuple(dict.fromkeys(users))
            else:
                self._fail(value, where, "unknown key; use enabled, users")
        return values

    def _limits(self, node: yaml.Node) -> dict[str, int]:
        limits = {}
        for name, value in self._mapping(node, "limits"):
            if name not in _LIMITS:
                self._fail(value, f"limits.{name}", f"unknown key; use {', '.join(_LIMITS)}")
            limits[_LIMITS[name]] = self._count(value, f"limits.{name}")
        return limits

    def _mapping(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self._fail(node, where, "must be a mapping of keys to values")
        pairs = []
        seen = set()
        for key_node, value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_node, where, "keys must be plain values")
            key = str(key_node.value)
            if key in seen:
                self._fail(key_node, f"{where}.{key}", "appears twice")
            seen.add(key)
            pairs.append((key, value))
        return pairs

    def _number(self, node: yaml.Node, where: str, key: str) -> None:
        if not _NUMBER.fullmatch(key):
            self._fail(node, where, "the key must be a sipgate number in E.164 digits, no +")

    def _user_key(self, node: yaml.Node, where: str, key: str) -> None:
        if not key.strip():
            self._fail(node, where, "the key must be a user name, userId or fullUserId")

    def _label_value(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not _LABEL_VALUE.fullmatch(str(node.value)):
            self._fail(node, where, f"must be a name of 1 to {MAX_VALUE_LENGTH} characters")
        if node.value == OTHER:
            self._fail(node, where, f"'{OTHER}' is reserved for everything not configured")
        return str(node.value)

    def _bool(self, node: yaml.Node, where: str) -> bool:
        try:
            return parse_bool(str(node.value) if isinstance(node, yaml.ScalarNode) else "")
        except ValueError:
            self._fail(node, where, f"must be {BOOL_SPELLINGS}")

    def _count(self, node: yaml.Node, where: str) -> int:
        text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
        if not text.isdigit() or not 1 <= int(text) <= 10_000:
            self._fail(node, where, "must be a whole number from 1 to 10000")
        return int(text)

    def _fail(self, node: yaml.Node, where: str, problem: str) -> NoReturn:
        raise ConfigFileError(f"{self._name}:{node.start_mark.line + 1}: {where}: {problem}")
