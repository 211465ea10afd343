"""The configuration file's lines may carry their own service-level thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config.file import load_label_config
from exporter.domain.labels import LabelConfig
from exporter.errors import ConfigFileError

HOTLINE = """\
lines:
  "4921100000001": {line: hotline, service_level_target: 15s, short_abandon: 2s}
  "4921100000002":
    line: hotline
    service_level_target: 15s
  "4921100000003": backoffice
"""


def load(tmp_path: Path, text: str) -> LabelConfig:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return load_label_config(path)


def test_a_line_sets_its_own_thresholds(tmp_path: Path) -> None:
    config = load(tmp_path, HOTLINE)

    assert config.lines == {
        "4921100000001": "hotline",
        "4921100000002": "hotline",
        "4921100000003": "backoffice",
    }
    assert config.targets == {"hotline": {"answer_within": 15.0, "short_abandon": 2.0}}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{service_level_target: 15s}", r":2: lines.4921100000001: a mapping needs line:"),
        ("{line: a, target: 15s}", r":2: lines.4921100000001.target: unknown key"),
        ("{line: a, short_abandon: soon}", r":2: lines.4921100000001.short_abandon: invalid dur"),
    ],
)
def test_errors_in_a_line_s_thresholds_name_it(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        load(tmp_path, f'lines:\n  "4921100000001": {entry}\n')


def test_two_numbers_of_a_line_must_agree_on_its_thresholds(tmp_path: Path) -> None:
    text = (
        "lines:\n"
        '  "4921100000001": {line: hotline, service_level_target: 15s}\n'
        '  "4921100000002": {line: hotline, service_level_target: 30s}\n'
    )
    with pytest.raises(ConfigFileError, match=r":3: .*line 'hotline' has another service_level"):
        load(tmp_path, text)


E164: str = "the key must be a sipgate number in E.164 digits, no +"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('  "0211": support', "0211"),
        ("  0211: support", "0211"),  # unquoted, YAML would read an octal number
        ('  "030123456789": support', "030123456789"),
        ('  "00492111234567": support', "00492111234567"),
        ('  "+492111234567": support', "+492111234567"),
        ('  "0211": {line: hotline, service_level_target: 15s}', "0211"),
    ],
)
def test_a_number_in_national_format_is_refused(tmp_path: Path, line: str, key: str) -> None:
    text = 'lines:\n  "4921112345670": sales\n' + line + "\n"
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, text)
    assert str(caught.value) == f"{tmp_path / 'config.yml'}:3: lines.{key}: {E164}"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        *[(spelling, True) for spelling in ("true", "yes", "on", "1", "True")],
        *[(spelling, False) for spelling in ("false", "no", "off", "0", "OFF")],
    ],
)
def test_booleans_take_the_same_spellings_as_the_flags(
    tmp_path: Path, spelling: str, expected: bool
) -> None:
    assert load(tmp_path, f"per_user:\n  enabled: {spelling}\n").per_user is expected


def test_a_bad_boolean_says_which_spellings_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, "per_user:\n  enabled: maybe\n")
    assert str(caught.value).endswith(
        ":2: per_user.enabled: must be true or false; also yes/no, on/off, 1/0"
    )
