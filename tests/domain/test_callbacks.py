"""Missed callers owed a callback: called back, called again, expired, dropped, restored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.callbacks import (
    CALLED_AGAIN,
    CALLED_BACK,
    DROPPED,
    OWED_OUTCOMES,
    Callbacks,
    ClosedDebt,
)
from exporter.domain.calls import ANSWERED, EXPIRED, MISSED, VOICEMAIL

T0 = 1_800_000_000.0
DAY = 86400.0
EXPIRE_AFTER = 3 * DAY
KEY = bytes(range(32))
ALICE = "4915791234567"
BOB = "492111234567"


@pytest.fixture
def callbacks() -> Callbacks:
    return Callbacks(expire_after=EXPIRE_AFTER, key=KEY)


def test_called_back_settles_with_the_delay_from_the_missed_call(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    assert callbacks.owe(alice, "sales", T0) == ()
    assert callbacks.pending_by_line() == {"sales": 1}

    settled = callbacks.settle(alice, T0 + 3600, CALLED_BACK)

    assert settled == (ClosedDebt("sales", CALLED_BACK, 3600.0),)
    assert callbacks.pending_by_line() == {"sales": 0}
    assert len(callbacks) == 0


def test_called_again_settles(callbacks: Callbacks) -> None:
    callbacks.owe(callbacks.digest(ALICE), "sales", T0)

    settled = callbacks.settle(callbacks.digest(ALICE), T0 + 90, CALLED_AGAIN)

    assert settled == (ClosedDebt("sales", CALLED_AGAIN, 90.0),)
    assert len(callbacks) == 0


def test_several_misses_are_one_debt_settled_once_from_the_first(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    for after in (0, 60, 120):
        assert callbacks.owe(alice, "sales", T0 + after) == ()
    assert callbacks.pending_by_line() == {"sales": 1}

    assert callbacks.settle(alice, T0 + 600, CALLED_BACK) == (
        ClosedDebt("sales", CALLED_BACK, 600.0),
    )
    assert callbacks.settle(alice, T0 + 700, CALLED_BACK) == ()


def test_a_debt_expires_after_the_expiry_and_is_not_settled_then(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    callbacks.owe(alice, "sales", T0)

    assert not callbacks.expiry_due(T0 + EXPIRE_AFTER - 1)
    assert callbacks.expire(T0 + EXPIRE_AFTER - 1) == ()
    assert callbacks.expiry_due(T0 + EXPIRE_AFTER)
    assert callbacks.expire(T0 + EXPIRE_AFTER) == (ClosedDebt("sales", EXPIRED),)
    assert callbacks.settle(alice, T0 + EXPIRE_AFTER + 1, CALLED_BACK) == ()
    assert callbacks.pending_by_line() == {"sales": 0}


def test_a_late_callback_expires_the_debt_instead_of_settling_it(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    callbacks.owe(alice, "sales", T0)

    closed = callbacks.settle(alice, T0 + EXPIRE_AFTER + 5, CALLED_BACK)

    assert closed == (ClosedDebt("sales", EXPIRED),)
    assert len(callbacks) == 0


def test_expire_closes_the_oldest_first_and_only_what_is_due(callbacks: Callbacks) -> None:
    callbacks.owe(callbacks.digest(ALICE), "sales", T0)
    callbacks.owe(callbacks.digest(BOB), "support", T0 + 10)
    callbacks.owe(callbacks.digest("4930123"), "sales", T0 + 20)

    closed = callbacks.expire(T0 + EXPIRE_AFTER + 10)

    assert closed == (ClosedDebt("sales", EXPIRED), ClosedDebt("support", EXPIRED))
    assert callbacks.pending_by_line() == {"sales": 1, "support": 0}


def test_a_miss_after_an_overdue_debt_opens_a_new_one(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    callbacks.owe(alice, "sales", T0)
    later = T0 + EXPIRE_AFTER + 1

    assert callbacks.owe(alice, "sales", later) == (ClosedDebt("sales", EXPIRED),)
    assert callbacks.pending_by_line() == {"sales": 1}
    assert callbacks.settle(alice, later + 30, CALLED_BACK) == (
        ClosedDebt("sales", CALLED_BACK, 30.0),
    )


@pytest.mark.parametrize("number", [None, "", "   ", "anonymous", "Anonymous", "+", "00", "sip:x"])
def test_anonymous_and_unknown_callers_are_never_owed(
    callbacks: Callbacks, number: str | None
) -> None:
    digest = callbacks.digest(number)

    assert digest is None
    assert callbacks.owe(digest, "sales", T0) == ()
    assert callbacks.settle(digest, T0 + 1, CALLED_BACK) == ()
    assert len(callbacks) == 0
    assert callbacks.pending_by_line() == {}


def test_one_callback_settles_the_number_on_every_line(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    callbacks.owe(alice, "sales", T0)
    callbacks.owe(alice, "support", T0 + 100)
    callbacks.owe(callbacks.digest(BOB), "support", T0 + 200)

    settled = callbacks.settle(alice, T0 + 1000, CALLED_BACK)

    assert sorted(settled, key=lambda debt: debt.line) == [
        ClosedDebt("sales", CALLED_BACK, 1000.0),
        ClosedDebt("support", CALLED_BACK, 900.0),
    ]
    assert callbacks.pending_by_line() == {"sales": 0, "support": 1}


def test_an_answer_before_the_miss_settles_nothing(callbacks: Callbacks) -> None:
    alice = callbacks.digest(ALICE)
    callbacks.owe(alice, "sales", T0 + 100)

    assert callbacks.settle(alice, T0 + 50, CALLED_BACK) == ()
    assert callbacks.pending_by_line() == {"sales": 1}


def test_past_max_pending_the_oldest_debt_is_dropped() -> None:
    callbacks = Callbacks(max_pending=2, key=KEY)
    alice, bob, carol = (callbacks.digest(n) for n in (ALICE, BOB, "4930123"))
    callbacks.owe(alice, "sales", T0)
    callbacks.owe(bob, "support", T0 + 1)

    assert callbacks.owe(carol, "support", T0 + 2) == (ClosedDebt("sales", DROPPED),)
    assert len(callbacks) == 2
    assert callbacks.pending_by_line() == {"sales": 0, "support": 2}
    assert callbacks.settle(alice, T0 + 3, CALLED_BACK) == ()
    assert callbacks.settle(bob, T0 + 3, CALLED_BACK) == (ClosedDebt("support", CALLED_BACK, 2.0),)


def test_plus_and_double_zero_prefixes_are_the_same_number(callbacks: Callbacks) -> None:
    digest = callbacks.digest(ALICE)
    assert callbacks.digest("+" + ALICE) == digest
    assert callbacks.digest("00" + ALICE) == digest
    assert callbacks.digest(f" +{ALICE} ") == digest
    assert callbacks.digest(BOB) != digest

    callbacks.owe(callbacks.digest("+" + ALICE), "sales", T0)
    assert callbacks.settle(digest, T0 + 5, CALLED_AGAIN) == (
        ClosedDebt("sales", CALLED_AGAIN, 5.0),
    )


def test_a_restored_state_keeps_the_debts_and_the_key(callbacks: Callbacks) -> None:
    callbacks.owe(callbacks.digest(ALICE), "sales", T0)
    callbacks.owe(callbacks.digest(ALICE), "support", T0 + 10)
    callbacks.owe(callbacks.digest(BOB), "sales", T0 + 20)
    state = json.loads(json.dumps(callbacks.export_state()))

    restored = Callbacks(expire_after=EXPIRE_AFTER)
    assert restored.restore_state(state) == ()

    assert restored.pending_by_line() == {"sales": 2, "support": 1}
    assert restored.digest(ALICE) == callbacks.digest(ALICE)
    assert restored.export_state() == state
    settled = restored.settle(restored.digest(ALICE), T0 + 100, CALLED_BACK)
    assert sorted(settled, key=lambda debt: debt.line) == [
        ClosedDebt("sales", CALLED_BACK, 100.0),
        ClosedDebt("support", CALLED_BACK, 90.0),
    ]
    assert restored.expire(T0 + 20 + EXPIRE_AFTER) == (ClosedDebt("sales", EXPIRED),)


@pytest.mark.parametrize("old", [None, {}])
def test_a_state_without_callbacks_restores_empty_with_a_new_key(
    callbacks: Callbacks, old: dict[str, Any] | None
) -> None:
    callbacks.owe(callbacks.digest(ALICE), "sales", T0)
    before = callbacks.digest(ALICE)

    assert callbacks.restore_state(old) == ()

    assert len(callbacks) == 0
    assert callbacks.pending_by_line() == {}
    assert callbacks.digest(ALICE) != before


def test_restoring_more_than_max_pending_drops_the_oldest(callbacks: Callbacks) -> None:
    for i, number in enumerate((ALICE, BOB, "4930123")):
        callbacks.owe(callbacks.digest(number), f"line{i}", T0 + i)

    smaller = Callbacks(max_pending=2)
    dropped = smaller.restore_state(callbacks.export_state())

    assert dropped == (ClosedDebt("line0", DROPPED),)
    assert smaller.pending_by_line() == {"line0": 0, "line1": 1, "line2": 1}


def test_the_state_holds_no_phone_number_in_clear(callbacks: Callbacks) -> None:
    numbers = (ALICE, BOB, "+4930123456", "0049891234567")
    for number in numbers:
        callbacks.owe(callbacks.digest(number), "sales", T0)

    text = json.dumps(callbacks.export_state())

    assert len(callbacks) == len(numbers)
    for number in numbers:
        digits = number.lstrip("+0")
        assert digits not in text
        assert digits[-7:] not in text  # not even the subscriber part


def test_owed_outcomes_follow_the_definition() -> None:
    assert {MISSED, VOICEMAIL, "busy", "rejected", "failed", "forwarded"} == OWED_OUTCOMES
    assert ANSWERED not in OWED_OUTCOMES
    assert EXPIRED not in OWED_OUTCOMES


def test_bad_arguments_are_refused(callbacks: Callbacks) -> None:
    with pytest.raises(ValueError, match="settled"):
        callbacks.settle(callbacks.digest(ALICE), T0, EXPIRED)
    with pytest.raises(ValueError, match="32 bytes"):
        Callbacks(key=b"short")
    with pytest.raises(ValueError, match="positive"):
        Callbacks(max_pending=0)


NUMBERS = (ALICE, BOB, "4930123", "anonymous")
LINES = ("sales", "support")
steps = st.lists(
    st.tuples(
        st.sampled_from(("owe", "back", "again", "expire")),
        st.sampled_from(NUMBERS),
        st.sampled_from(LINES),
        st.floats(min_value=0, max_value=DAY),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps, max_pending=st.integers(min_value=1, max_value=4))
def test_pending_is_opened_minus_closed_and_never_past_max_pending(
    steps: list[tuple[str, str, str, float]], max_pending: int
) -> None:
    callbacks = Callbacks(expire_after=EXPIRE_AFTER, max_pending=max_pending, key=KEY)
    now, opened, closed = T0, 0, 0
    for action, number, line, after in steps:
        now += after
        closed += len(callbacks.expire(now))  # so that `before` is what `owe` sees
        digest = callbacks.digest(number)
        before = {(d, debt_line) for d, debt_line, _ in callbacks.export_state()["debts"]}
        if action == "owe":
            ended = callbacks.owe(digest, line, now)
            opened += digest is not None and (digest.hex(), line) not in before
            assert {debt.result for debt in ended} <= {DROPPED}
        elif action == "expire":
            ended = callbacks.expire(now)
        else:
            ended = callbacks.settle(digest, now, CALLED_BACK if action == "back" else CALLED_AGAIN)
            ours = {(d, debt_line) for d, debt_line in before if digest and d == digest.hex()}
            assert len(ended) == len(ours)
        assert all(0 <= (debt.delay or 0) < EXPIRE_AFTER for debt in ended)
        closed += len(ended)

        pending = callbacks.pending_by_line()
        assert len(callbacks) == opened - closed <= max_pending
        assert sum(pending.values()) == len(callbacks)
        assert min(pending.values(), default=0) >= 0
