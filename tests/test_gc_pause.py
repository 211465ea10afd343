"""The garbage-collector pause used around snapshots and restores."""

from __future__ import annotations

import gc

import pytest

from exporter.gc_pause import collector_paused


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
