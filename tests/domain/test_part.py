"""CallTracker.part: a tracker for the few calls and debts a shared store hands over."""

from __future__ import annotations

from exporter.domain.callbacks import Callbacks
from exporter.domain.events import NewCall
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics

PARTY = "aa" * 16


def tracker(max_pending: int = 10_000) -> CallTracker:
    return CallTracker(new_statistics(), 10.0, 3600.0, callbacks=Callbacks(100.0, max_pending))


def test_debts_handed_over_in_any_order_expire_oldest_first() -> None:
    # A store hands debts over by key; expiry looks at the oldest first.
    part = tracker().part([], [[PARTY, "a-line", 990.0], [PARTY, "b-line", 800.0]])
    part.sweep(1000.0)
    assert part.stats.callbacks == {("b-line", "expired"): 1}
    assert [debt[1] for debt in part.callbacks.export_state()["debts"]] == ["a-line"]


def test_a_part_drops_no_debt_past_the_cap_which_its_store_keeps() -> None:
    debts = [[f"{number:032x}", "line", 990.0 + number] for number in range(5)]
    part = tracker(max_pending=2).part([], debts)
    assert len(part.callbacks) == 5
    assert part.stats.callbacks_dropped == 0


def test_a_part_counts_from_zero_with_the_trackers_key() -> None:
    whole = tracker()
    whole.stats.dtmf_events = 7
    part = whole.part([], [])
    assert part.stats.dtmf_events == 0
    assert part.callbacks.key == whole.callbacks.key


def test_a_store_bounding_its_tables_evicts_calls_and_drops_debts_as_the_caps_count_them() -> None:
    whole = tracker()
    whole.handle(NewCall("kept", "in", from_number="4930123"), 1.0)
    whole.handle(NewCall("evicted", "in", from_number="4930124"), 2.0)
    calls = whole.export_state()["calls"]
    debts = [[PARTY, "line", 990.0], ["bb" * 16, "line", 991.0]]
    part = whole.part(calls, debts)

    ended = part.evict(["evicted", "unknown"], [(bytes.fromhex(PARTY), "line")])

    assert [(call.call_id, call.outcome) for call in ended] == [("evicted", "expired")]
    assert part.open_calls == 1
    assert part.stats.evicted == 1
    assert part.stats.callbacks_dropped == 1
    assert [debt[0] for debt in part.callbacks.export_state()["debts"]] == ["bb" * 16]
