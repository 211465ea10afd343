"""Store health: failed writes counted, each episode logged once when it starts and ends."""

from __future__ import annotations

import logging

import pytest

from exporter.errors import StateError
from exporter.storage.health import JOURNAL, SNAPSHOT, StoreHealth
from tests.conftest import FakeClock

FULL = StateError("cannot write the journal /data/state.db.journal: No space left on device")


def test_an_episode_is_logged_when_it_starts_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    health = StoreHealth(clock)
    caplog.set_level(logging.INFO)

    for _ in range(3):
        health.failed(JOURNAL, FULL)
    clock.advance(42.0)
    health.worked(JOURNAL)
    health.worked(JOURNAL)

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"{FULL}; events are refused with 500 until it can be written again"),
        (logging.INFO, "the journal can be written again, after 42s and 3 failed writes"),
    ]
    assert health.write_errors() == {JOURNAL: 3, SNAPSHOT: 0}


def test_only_a_failing_journal_makes_the_exporter_unready() -> None:
    health = StoreHealth()
    assert health.problem() is None
    health.failed(SNAPSHOT, StateError("cannot write a snapshot"))
    assert health.problem() is None, "events are still kept"
    health.failed(JOURNAL, FULL)
    assert health.problem() == str(FULL)
    health.worked(JOURNAL)
    assert health.problem() is None


def test_a_write_begun_before_a_failure_does_not_end_its_episode() -> None:
    health = StoreHealth()
    before = health.errors(JOURNAL)  # one request begins its write
    health.failed(JOURNAL, FULL)  # another's fails meanwhile

    health.worked(JOURNAL, before)

    assert health.is_failing(JOURNAL)
    after = health.errors(JOURNAL)
    health.worked(JOURNAL, after)
    assert not health.is_failing(JOURNAL)
