"""Lines, teams and users: the configuration file, the caps, and the statistics they split."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.file import load_label_config
from exporter.domain.events import Answer, Hangup, NewCall
from exporter.domain.labels import LabelConfig, Labeler
from exporter.domain.tracker import CallTracker
from exporter.errors import ConfigFileError
from exporter.metrics import create_registry, new_requests, new_statistics
from tests.conftest import EXPIRE_AFTER, FORWARD_GRACE, FakeClock

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sipgate-exporter.yml"
SUPPORT_NUMBER = "4921112345670"
CONFIG = LabelConfig(
    lines={SUPPORT_NUMBER: "support", "4921112345671": "sales"},
    teams={"Alice": "frontdesk", "w7": "backoffice", "1234567w9": "backoffice"},
    per_user=True,
    users=("Alice", "Bob"),
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_loads() -> None:
    config = load_label_config(EXAMPLE)
    assert config.lines["4921112345670"] == "support"
    assert config.teams["Jürgen"] == "sales"
    assert config.teams["1234567w4"] == "backoffice"
    assert config.per_user
    assert config.users == ("Alice", "Bob", "Jürgen")
    assert (config.max_lines, config.max_teams, config.max_users) == (50, 50, 100)


def test_an_empty_file_is_the_default(tmp_path: Path) -> None:
    assert load_label_config(write(tmp_path, "# nothing yet\n")) == LabelConfig()


def test_unquoted_numbers_are_read_as_digits(tmp_path: Path) -> None:
    config = load_label_config(write(tmp_path, "lines:\n  4921112345670: support\n"))
    assert config.lines == {"4921112345670": "support"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lines:\n  support: 4921\n", r":2: lines.support: the key must be a sipgate number"),
        ('lines:\n  "+4921112345": x\n', r":2: lines.\+4921112345: the key must be"),
        ("lines:\n  '4921': other\n", r":2: lines.4921: 'other' is reserved"),
        ("teams:\n  Alice: [a, b]\n", r":2: teams.Alice: must be a name of 1 to 64"),
        ("teams:\n  Alice: a\n  Alice: b\n", r":3: teams.Alice: appears twice"),
        ("colours: {}\n", r":1: colours: unknown key; use lines, teams, per_user, limits"),
        ("per_user:\n  enabled: maybe\n", r":2: per_user.enabled: must be true or false"),
        ("per_user:\n  users: Alice\n", r":2: per_user.users: must be a list"),
        ("limits:\n  lines: 0\n", r":2: limits.lines: must be a whole number"),
        ("limits:\n  calls: 5\n", r":2: limits.calls: unknown key"),
        ("lines: [1, 2]\n", r":1: lines: must be a mapping"),
        ("lines:\n  '4921': a\n   bad indent: b\n", r":3: invalid YAML"),
        (
            "per_user:\n  users: [a, b, c]\nlimits:\n  users: 2\n",
            r"per_user.users: 3 users, more than limits.users",
        ),
    ],
)
def test_errors_name_the_line_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError, match=message) as caught:
        load_label_config(path)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_label_config(tmp_path / "missing.yml")


def test_labeler_maps_and_caps_lines_and_teams() -> None:
    overflows: list[str] = []
    labeler = Labeler(
        LabelConfig(
            lines={"1001": "a", "1002": "b", "1003": "c", "1004": "a"},
            teams={"Alice": "red", "w2": "blue", "1234567w3": "green"},
            max_lines=2,
            max_teams=2,
        ),
        overflows.append,
    )
    assert labeler.lines == ("a", "b")
    assert [labeler.line(n) for n in ("1001", "1004", "1002", "9999", None)] == [
        "a",
        "a",
        "b",
        "other",
        "other",
    ]
    assert overflows == []
    assert labeler.line("1003") == "other"
    assert overflows == ["line"]
    assert labeler.team("Alice", None, None) == "red"
    assert labeler.team("Nobody", "w2", None) == "blue"
    assert labeler.team(None, None, "1234567w3") == "other"
    assert overflows == ["line", "team"]
    assert labeler.user("Alice") is None  # per-user statistics are off


def test_users_by_allow_list_or_up_to_the_cap() -> None:
    overflows: list[str] = []
    listed = Labeler(LabelConfig(per_user=True, users=("Alice",)), overflows.append)
    assert listed.user("Alice") == "Alice"
    assert listed.user("Mallory") == "other"
    assert listed.users == ("Alice",)
    capped = Labeler(LabelConfig(per_user=True, max_users=2), overflows.append)
    assert [capped.user(name) for name in ("Ann", "Ben", "Ann", "Cid", None)] == [
        "Ann",
        "Ben",
        "Ann",
        "other",
        "other",
    ]
    assert capped.users == ("Ann", "Ben")
    assert overflows == ["user"]
    assert capped.user("x" * 200) == "other"


@pytest.fixture
def configured(tracker: CallTracker) -> CallTracker:
    tracker.configure_labels(CONFIG)
    return tracker


def test_calls_are_split_by_line_and_credited_to_teams(
    configured: CallTracker, clock: FakeClock
) -> None:
    tracker = configured
    tracker.handle(NewCall("A", "in", to_number=SUPPORT_NUMBER, users=("Alice",)), clock())
    tracker.handle(Answer("A", "in", user="Alice", user_id="w1"), clock.advance(5))
    tracker.handle(NewCall("B", "in", orig_call_id="A", to_number="999", users=("Bob",)), clock())
    tracker.handle(Answer("B", "in", user="Bob", user_id="w7"), clock.advance(5))
    tracker.handle(Hangup("A", "in", cause="normalClearing"), clock.advance(10))
    tracker.handle(Hangup("B", "in", cause="normalClearing"), clock.advance(40))
    tracker.handle(
        NewCall("O", "out", from_number="4921112345671", users=("Bob",), user_ids=("w7",)), clock()
    )
    tracker.handle(NewCall("X", "in", to_number="4900000", users=("Zed",)), clock())
    tracker.handle(Hangup("X", "in", cause="cancel"), clock.advance(3))
    stats = tracker.stats
    assert stats.calls_started == {("in", "support"): 1, ("out", "sales"): 1, ("in", "other"): 1}
    assert stats.calls_ended[("in", "answered", "support")] == 1
    assert stats.calls_ended[("in", "missed", "other")] == 1
    # The transfer's first answerer, Alice, takes the call and all its talk time.
    assert dict(stats.team_answered) == {"frontdesk": 1}
    assert dict(stats.team_talk) == {"frontdesk": 55.0}
    assert dict(stats.user_answered) == {"Alice": 1}
    assert dict(stats.team_outgoing) == {"backoffice": 1}
    assert dict(stats.user_outgoing) == {"Bob": 1}


def test_voicemail_is_nobody_s_answer(configured: CallTracker, clock: FakeClock) -> None:
    configured.handle(NewCall("V", "in", to_number=SUPPORT_NUMBER, users=("voicemail",)), clock())
    configured.handle(Answer("V", "in", user="voicemail"), clock.advance(2))
    configured.handle(Hangup("V", "in", cause="normalClearing"), clock.advance(30))
    assert configured.stats.calls_ended[("in", "voicemail", "support")] == 1
    assert not configured.stats.team_answered


def test_reconfiguring_keeps_statistics_and_the_lines_of_calls_in_progress(
    configured: CallTracker, clock: FakeClock
) -> None:
    configured.handle(NewCall("A", "in", to_number=SUPPORT_NUMBER), clock())
    configured.handle(NewCall("B", "in", to_number=SUPPORT_NUMBER), clock())
    configured.handle(Hangup("B", "in", cause="cancel"), clock())
    configured.configure_labels(LabelConfig(lines={SUPPORT_NUMBER: "hotline"}))
    configured.handle(Hangup("A", "in", cause="cancel"), clock())
    configured.handle(NewCall("C", "in", to_number=SUPPORT_NUMBER), clock())
    stats = configured.stats
    assert stats.calls_ended == {("in", "missed", "support"): 2}
    assert stats.calls_started == {("in", "support"): 2, ("in", "hotline"): 1}


def series(tracker: CallTracker) -> dict[str, int]:
    text = generate_latest(create_registry(tracker, new_requests(), process_metrics=False)).decode()
    return {family.name: len(family.samples) for family in text_string_to_metric_families(text)}


def test_configured_values_exist_at_zero(configured: CallTracker) -> None:
    counts = series(configured)
    assert counts["sipgate_calls"] == 2 * 3  # two directions, support, sales, other
    assert counts["sipgate_calls_ended"] == 2 * 8 * 3
    assert counts["sipgate_team_calls_answered"] == 3  # frontdesk, backoffice, other
    assert counts["sipgate_user_calls_answered"] == 2  # the allow-listed users


def test_ten_thousand_random_users_and_numbers_stay_within_the_caps(clock: FakeClock) -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible, not secret
    tracker = CallTracker(new_statistics(), FORWARD_GRACE, EXPIRE_AFTER, max_open=500)
    lines = {f"49211{n:06d}": f"line{n % 80}" for n in range(200)}
    teams = {f"user{n}": f"team{n % 70}" for n in range(300)}
    tracker.configure_labels(LabelConfig(lines=lines, teams=teams, per_user=True, max_users=30))
    before = series(tracker)
    numbers = [*lines, *(f"49{rng.randrange(10**10):010d}" for _ in range(10_000))]
    for index in range(10_000):
        name = rng.choice([*teams, "".join(rng.choices(string.ascii_letters, k=12))])
        number = rng.choice(numbers)
        direction = rng.choice(["in", "out"])
        call_id = f"c{index}"
        outgoing = direction == "out"
        new_call = NewCall(
            call_id,
            direction,
            from_number=number if outgoing else None,
            to_number=None if outgoing else number,
            users=(name,),
        )
        tracker.handle(new_call, clock.advance(1))
        tracker.handle(Answer(call_id, direction, user=name), clock.advance(1))
        tracker.handle(Hangup(call_id, direction, cause="normalClearing"), clock.advance(1))
    after = series(tracker)
    assert after["sipgate_calls"] == before["sipgate_calls"] == 2 * (50 + 1)
    assert after["sipgate_calls_ended"] == before["sipgate_calls_ended"]
    assert after["sipgate_team_calls_answered"] == before["sipgate_team_calls_answered"] == 51
    assert after["sipgate_user_calls_answered"] == 30 + 1  # the cap, and "other"
    overflow = tracker.stats.overflow
    assert overflow["line"] > 0
    assert overflow["team"] > 0
    assert overflow["user"] > 0
