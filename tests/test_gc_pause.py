"""The garbage collector: paused around snapshots and restores, frozen after start."""

from __future__ import annotations

import gc

import pytest

from exporter.gc_pause import YOUNG_THRESHOLD, collector_paused, settle_after_start


def test_pauses_and_resumes_even_when_nested_or_failing() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner pause must not resume the outer one"
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_settling_freezes_what_exists_and_collects_young_objects_less_often() -> None:
    threshold = gc.get_threshold()
    built_at_start = [object() for _ in range(10)]
    try:
        settle_after_start()
        assert gc.get_freeze_count() > len(built_at_start)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert gc.get_freeze_count() == 0
