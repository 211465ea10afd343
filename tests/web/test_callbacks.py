"""Callback debts through the webhook and /metrics, with an injected clock."""

from __future__ import annotations

import pytest
import webtest

from exporter.domain.callbacks import Callbacks
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from tests.conftest import FakeClock
from tests.http_helpers import CALLER, FORM, answer, hangup, new_call, registry_samples, value
from tests.in_process import InProcess, build

DAY = 86400.0
LINE_NUMBER = "4921100000001"


class Exporter:
    """An exporter in this process whose clock the test moves."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        tracker = CallTracker(new_statistics(), 10.0, 3600.0, callbacks=Callbacks(DAY))
        self.parts: InProcess = build(tracker, clock=self.clock)
        self.app = webtest.TestApp(self.parts.app)
        self._ids = 0

    def call(self, direction: str, *, answered: bool, caller: str = CALLER) -> None:
        self._ids += 1
        call_id = str(self._ids)
        numbers = {"caller": caller} if direction == "in" else {"callee": caller}
        self._post(new_call(call_id, direction, **numbers))
        self.clock.advance(10)
        if answered:
            self._post(answer(call_id, direction))
            self.clock.advance(60)
            self._post(hangup(call_id, direction=direction))
        else:
            self._post(hangup(call_id, "cancel", direction))

    def sweep_after(self, seconds: float) -> None:
        self.parts.recorder.sweep(self.clock.advance(seconds))

    def metric(self, name: str, **labels: str) -> float:
        return value(registry_samples(self.parts.registry), name, **labels)

    def _post(self, body: str) -> None:
        self.app.post("/webhook", body, content_type=FORM, status=200)


@pytest.fixture
def exporter() -> Exporter:
    return Exporter()


def test_a_caller_who_calls_again_and_is_answered_settles_the_debt(exporter: Exporter) -> None:
    exporter.call("in", answered=False)
    exporter.call("in", answered=False)
    assert exporter.metric("sipgate_callbacks_pending") == 1
    exporter.call("in", answered=True)

    assert exporter.metric("sipgate_callbacks_pending") == 0
    assert exporter.metric("sipgate_callbacks_total", result="called_again") == 1
    assert exporter.metric("sipgate_callbacks_total", result="called_back") == 0
    # From the end of the first miss, 10 s into the test, to the answer, 30 s in.
    assert exporter.metric("sipgate_callback_delay_seconds_sum") == 20


def test_a_debt_nobody_settles_expires(exporter: Exporter) -> None:
    exporter.call("in", answered=False)
    exporter.sweep_after(DAY)

    assert exporter.metric("sipgate_callbacks_pending") == 0
    assert exporter.metric("sipgate_callbacks_total", result="expired") == 1
    exporter.call("out", answered=True)
    assert exporter.metric("sipgate_callbacks_total", result="called_back") == 0


def test_an_anonymous_caller_is_owed_nothing(exporter: Exporter) -> None:
    exporter.call("in", answered=False, caller="anonymous")

    assert exporter.metric("sipgate_callbacks_pending") == 0
