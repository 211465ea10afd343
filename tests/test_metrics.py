"""The metric contract: names, labels, zero series from the start, and no personal data."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.domain.events import Answer, Hangup, NewCall
from exporter.domain.tracker import CallTracker
from exporter.metrics import WAIT_BUCKETS, create_registry, new_requests
from tests.conftest import FakeClock
from tests.http_helpers import EVENTS, OUTCOMES

CONTRACT = {
    "sipgate_calls": ("counter", {"direction", "line"}),
    "sipgate_calls_ended": ("counter", {"direction", "outcome", "line"}),
    "sipgate_calls_active": ("gauge", {"direction", "state", "line"}),
    "sipgate_call_wait_seconds": ("histogram", {"direction", "outcome", "line"}),
    "sipgate_call_duration_seconds": ("histogram", {"direction", "answered_by", "line"}),
    "sipgate_hangups": ("counter", {"direction", "cause"}),
    "sipgate_dtmf_events": ("counter", set()),
    "sipgate_webhook_requests": ("counter", {"event", "code"}),
    "sipgate_webhook_rejected_requests": ("counter", {"reason"}),
    "sipgate_webhook_request_duration_seconds": ("histogram", set()),
    "sipgate_webhook_last_received_timestamp_seconds": ("gauge", set()),
    "sipgate_events_unmatched": ("counter", {"event"}),
    "sipgate_calls_evicted": ("counter", set()),
    "sipgate_team_calls_answered": ("counter", {"team"}),
    "sipgate_team_talk_seconds": ("counter", {"team"}),
    "sipgate_team_outgoing_calls": ("counter", {"team"}),
    "sipgate_label_values_overflow": ("counter", {"label"}),
    "sipgate_exporter_build_info": ("gauge", {"version"}),
    "sipgate_calls_offered": ("counter", {"direction", "line"}),
    "sipgate_calls_answered_in_target": ("counter", {"direction", "line"}),
    "sipgate_calls_abandoned": ("counter", {"direction", "line"}),
    "sipgate_calls_short_abandoned": ("counter", {"direction", "line"}),
    "sipgate_calls_answered_unnamed": ("counter", {"direction", "line"}),
    "sipgate_calls_ringing_since_timestamp_seconds": ("gauge", {"direction", "line"}),
    "sipgate_callbacks_pending": ("gauge", {"line"}),
    "sipgate_callbacks": ("counter", {"line", "result"}),
    "sipgate_callback_delay_seconds": ("histogram", {"line"}),
    "sipgate_callbacks_dropped": ("counter", set()),
}


def exposition(tracker: CallTracker) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = generate_latest(create_registry(tracker, new_requests(), process_metrics=False)).decode()
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
        assert CONTRACT[family.name][0] == family.type, family.name
    return families


def label_values(samples: list[tuple[str, dict[str, str], float]], label: str) -> set[str]:
    return {labels[label] for _, labels, _ in samples if label in labels}


def test_every_contract_metric_exists_before_any_event(tracker: CallTracker) -> None:
    families = exposition(tracker)
    assert set(families) == set(CONTRACT)
    for name, (_, labels) in CONTRACT.items():
        for _, sample_labels, _ in families[name]:
            assert set(sample_labels) - {"le"} == labels, name


def test_every_known_label_combination_is_zero_at_start(tracker: CallTracker) -> None:
    families = exposition(tracker)
    ended = families["sipgate_calls_ended"]
    assert len(ended) == 2 * 8
    assert all(value == 0 for _, _, value in ended)
    assert label_values(ended, "outcome") == set(OUTCOMES)
    assert len(families["sipgate_calls_active"]) == 4
    assert len(families["sipgate_hangups"]) == 2 * 8
    assert label_values(families["sipgate_hangups"], "cause") >= {"other", "forwarded"}
    requests = label_values(families["sipgate_webhook_requests"], "event")
    assert requests == {*EVENTS, "unknown", "invalid"}
    assert label_values(families["sipgate_events_unmatched"], "event") == set(EVENTS)
    wait_buckets = [
        s
        for s in families["sipgate_call_wait_seconds"]
        if s[0].endswith("_bucket") and s[1]["direction"] == "in" and s[1]["outcome"] == "missed"
    ]
    assert len(wait_buckets) == len(WAIT_BUCKETS) + 1
    assert "expired" not in label_values(families["sipgate_call_wait_seconds"], "outcome")
    assert families["sipgate_webhook_last_received_timestamp_seconds"][0][2] == 0
    assert families["sipgate_exporter_build_info"] == [
        ("sipgate_exporter_build_info", {"version": __version__}, 1.0)
    ]


def test_values_follow_the_statistics(tracker: CallTracker, clock: FakeClock) -> None:
    tracker.handle(NewCall("A", "in", from_number="492111234567", users=("Jürgen",)), clock())
    tracker.handle(Answer("A", "in", user="Jürgen"), clock.advance(4))
    tracker.handle(Hangup("A", "in", cause="normalClearing"), clock.advance(90))
    tracker.handle(NewCall("B", "out"), clock())
    families = exposition(tracker)
    samples = {
        (name, tuple(sorted(labels.items()))): value
        for metric in families.values()
        for name, labels, value in metric
    }
    line = ("line", "other")
    assert samples[("sipgate_calls_total", (("direction", "in"), line))] == 1
    ended = (("direction", "in"), line, ("outcome", "answered"))
    assert samples[("sipgate_calls_ended_total", ended)] == 1
    active = (("direction", "out"), line, ("state", "ringing"))
    assert samples[("sipgate_calls_active", active)] == 1
    wait = (("direction", "in"), ("le", "3.0"), line, ("outcome", "answered"))
    assert samples[("sipgate_call_wait_seconds_bucket", wait)] == 0
    wait = (("direction", "in"), ("le", "5.0"), line, ("outcome", "answered"))
    assert samples[("sipgate_call_wait_seconds_bucket", wait)] == 1
    talk = (("answered_by", "person"), ("direction", "in"), line)
    assert samples[("sipgate_call_duration_seconds_sum", talk)] == 90
    assert samples[("sipgate_team_calls_answered_total", (("team", "other"),))] == 1
    assert samples[("sipgate_team_talk_seconds_total", (("team", "other"),))] == 90
    assert samples[("sipgate_team_outgoing_calls_total", (("team", "other"),))] == 1
    assert samples[("sipgate_webhook_last_received_timestamp_seconds", ())] == clock()


def test_no_phone_number_call_id_or_user_name_becomes_a_label(
    tracker: CallTracker, clock: FakeClock
) -> None:
    call_id = "callid-7f3a"
    tracker.handle(
        NewCall(
            call_id,
            "in",
            from_number="492111234567",
            to_number="4915791234567",
            users=("Jürgen",),
        ),
        clock(),
    )
    tracker.handle(Answer(call_id, "in", user="Jürgen", answering_number="4921199"), clock())
    tracker.handle(Hangup(call_id, "in", cause="weirdCause"), clock())
    text = generate_latest(create_registry(tracker, new_requests(), process_metrics=False)).decode()
    for value in (call_id, "492111234567", "4915791234567", "Jürgen", "4921199", "weirdCause"):
        assert value not in text
