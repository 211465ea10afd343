"""In-process functional tests of every route of the Bottle app, through WebTest."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import webtest
from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.domain.calls import Handled
from exporter.domain.events import Event, NewCall
from exporter.domain.tracker import CallTracker
from exporter.metrics import new_statistics
from exporter.web.guard import Guard, parse_networks
from tests.http_helpers import (
    ANSWERERS,
    CALLEE,
    CALLER,
    CAUSES,
    DIRECTIONS,
    EVENTS,
    FORM,
    OUTCOMES,
    STATES,
    answer,
    assert_invariant,
    dtmf,
    hangup,
    new_call,
    parse_xml,
    registry_samples,
    value,
)
from tests.in_process import build

NOW = 1_700_000_000.5
CONTRACT = {
    "sipgate_calls_total": "counter",
    "sipgate_calls_ended_total": "counter",
    "sipgate_calls_active": "gauge",
    "sipgate_call_wait_seconds": "histogram",
    "sipgate_call_duration_seconds": "histogram",
    "sipgate_hangups_total": "counter",
    "sipgate_dtmf_events_total": "counter",
    "sipgate_webhook_requests_total": "counter",
    "sipgate_webhook_request_duration_seconds": "histogram",
    "sipgate_webhook_last_received_timestamp_seconds": "gauge",
    "sipgate_events_unmatched_total": "counter",
    "sipgate_exporter_build_info": "gauge",
}


class Clock:
    """A settable clock for the app."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class RecordingTracker(CallTracker):
    """A tracker that keeps every event the web layer hands it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.events: list[Event] = []

    def handle(self, event: Event, now: float) -> Handled:
        self.events.append(event)
        return super().handle(event, now)


class ExplodingTracker(CallTracker):
    """A tracker whose handling fails, as a bug in the domain would."""

    def handle(self, event: Event, now: float) -> Handled:
        raise RuntimeError("secret internals of the failure")


@dataclass
class Web:
    """The app under test and what it is wired to."""

    app: Any
    tracker: CallTracker
    registry: CollectorRegistry
    clock: Clock

    def post(self, body: str | bytes, status: int = 200, **kwargs: Any) -> Any:
        kwargs.setdefault("content_type", FORM)
        return self.app.post("/webhook", body, status=status, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        return value(registry_samples(self.registry), name, **labels)

    def check_invariant(self) -> None:
        assert_invariant(registry_samples(self.registry))


MakeWeb = Callable[..., Web]


@pytest.fixture
def make_web() -> MakeWeb:
    def make(
        public_url: str | None = None,
        tracker_class: type[CallTracker] = RecordingTracker,
        not_ready: Callable[[], str | None] | None = None,
        trusted_proxies: str | None = None,
    ) -> Web:
        tracker = tracker_class(new_statistics(), 10.0, 3600.0)
        clock = Clock()
        guard = Guard(trusted_proxies=parse_networks(trusted_proxies)) if trusted_proxies else None
        parts = build(tracker, guard=guard, public_url=public_url, clock=clock, not_ready=not_ready)
        return Web(webtest.TestApp(parts.app), tracker, parts.registry, clock)

    return make


@pytest.fixture
def web(make_web: MakeWeb) -> Web:
    return make_web()


def reply_urls(response: Any) -> tuple[str, str]:
    root = parse_xml(response.body)
    assert root.tag == "Response"
    return root.attrib["onAnswer"], root.attrib["onHangup"]


def assert_empty_reply(response: Any) -> None:
    assert response.content_type == "application/xml"
    root = parse_xml(response.body)
    assert root.tag == "Response"
    assert root.attrib == {}
    assert list(root) == []


# --- POST /webhook: valid events ---------------------------------------------------------------


def test_new_call_reply_names_the_webhook_url_of_the_request_host(web: Web) -> None:
    response = web.post(new_call("1"), headers={"Host": "stats.example.com:8080"})

    assert response.content_type == "application/xml"
    url = "http://stats.example.com:8080/webhook"
    assert reply_urls(response) == (url, url)
    assert web.metric("sipgate_calls_total", direction="in") == 1
    assert web.metric("sipgate_calls_active", direction="in", state="ringing") == 1
    assert web.metric("sipgate_webhook_requests_total", event="newCall", code="200") == 1
    web.check_invariant()


PROXY = {"REMOTE_ADDR": "10.0.0.2"}


def test_new_call_reply_honours_forwarded_proto_and_host_from_a_trusted_proxy(
    make_web: MakeWeb,
) -> None:
    web = make_web(trusted_proxies="10.0.0.0/8")
    headers = {
        "Host": "10.0.0.5:9850",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "stats.example.com",
    }
    response = web.post(new_call("1"), headers=headers, extra_environ=PROXY)

    url = "https://stats.example.com/webhook"
    assert reply_urls(response) == (url, url)
    web.check_invariant()


@pytest.mark.parametrize("trusted", [None, "192.168.0.0/16"], ids=["no-proxies", "other-proxy"])
def test_forwarded_proto_and_host_from_anyone_else_are_ignored(
    make_web: MakeWeb, trusted: str | None
) -> None:
    web = make_web(trusted_proxies=trusted)
    headers = {
        "Host": "stats.example.com:9850",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example.net",
    }
    response = web.post(new_call("1"), headers=headers, extra_environ=PROXY)

    url = "http://stats.example.com:9850/webhook"
    assert reply_urls(response) == (url, url)


@pytest.mark.parametrize("proto", ["javascript", "ftp", "HTTPS:", ""])
def test_a_trusted_proxy_may_forward_only_http_or_https(make_web: MakeWeb, proto: str) -> None:
    web = make_web(trusted_proxies="10.0.0.0/8")
    headers = {"Host": "stats.example.com", "X-Forwarded-Proto": proto}
    response = web.post(new_call("1"), headers=headers, extra_environ=PROXY)

    assert reply_urls(response)[0] == "http://stats.example.com/webhook"


def test_the_proxy_next_to_the_exporter_sets_the_forwarded_values_that_count(
    make_web: MakeWeb,
) -> None:
    web = make_web(trusted_proxies="10.0.0.0/8")
    headers = {
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "spoofed.example.net, stats.example.com",
    }
    response = web.post(new_call("1"), headers=headers, extra_environ=PROXY)

    assert reply_urls(response)[0] == "https://stats.example.com/webhook"


def test_each_host_and_mount_point_gets_its_own_webhook_url(web: Web) -> None:
    seen = []
    for number, (host, script) in enumerate(
        [
            ("a.example.com", ""),
            ("b.example.com", ""),
            ("a.example.com", "/hooks"),
            ("a.example.com", ""),
        ]
    ):
        response = web.post(
            new_call(str(number)),
            headers={"Host": host},
            extra_environ={"SCRIPT_NAME": script},
        )
        seen.append(reply_urls(response)[0])
    assert seen == [
        "http://a.example.com/webhook",
        "http://b.example.com/webhook",
        "http://a.example.com/hooks/webhook",
        "http://a.example.com/webhook",
    ]
    web.check_invariant()


def test_new_call_reply_prefers_the_configured_public_url(make_web: MakeWeb) -> None:
    public = "https://user:pw@stats.example.com/hooks/sipgate?a=1&b=2"
    web = make_web(public_url=public)
    headers = {"Host": "internal:9850", "X-Forwarded-Host": "proxy.example.com"}

    response = web.post(new_call("1"), headers=headers)

    assert reply_urls(response) == (public, public)
    web.check_invariant()


@pytest.mark.parametrize(
    "follow_up",
    [answer("1"), hangup("1"), dtmf("1"), dtmf("1", digits="")],
    ids=["answer", "hangup", "dtmf", "empty-dtmf"],
)
def test_other_events_get_an_empty_response(web: Web, follow_up: str) -> None:
    web.post(new_call("1"))

    response = web.post(follow_up)

    assert_empty_reply(response)
    event = follow_up.split("&")[0].removeprefix("event=")
    assert web.metric("sipgate_webhook_requests_total", event=event, code="200") == 1
    assert web.metric("sipgate_events_unmatched_total", event=event) == 0
    web.check_invariant()


def test_answer_and_hangup_end_an_answered_call_with_wait_and_duration(web: Web) -> None:
    web.post(new_call("1"))
    web.clock.now += 3
    web.post(answer("1"))
    assert web.metric("sipgate_calls_active", direction="in", state="talking") == 1
    web.check_invariant()
    web.clock.now += 60
    web.post(hangup("1"))

    assert web.metric("sipgate_calls_ended_total", direction="in", outcome="answered") == 1
    assert web.metric("sipgate_hangups_total", direction="in", cause="normalClearing") == 1
    wait = {"direction": "in", "outcome": "answered"}
    assert web.metric("sipgate_call_wait_seconds_count", **wait) == 1
    assert web.metric("sipgate_call_wait_seconds_sum", **wait) == 3
    assert web.metric("sipgate_call_wait_seconds_bucket", le="2.0", **wait) == 0
    assert web.metric("sipgate_call_wait_seconds_bucket", le="3.0", **wait) == 1
    duration = {"direction": "in", "answered_by": "person"}
    assert web.metric("sipgate_call_duration_seconds_sum", **duration) == 60
    assert sum(web.metric("sipgate_calls_active", direction="in", state=s) for s in STATES) == 0
    web.check_invariant()


def test_unknown_event_value_is_acknowledged_and_counted(web: Web) -> None:
    response = web.post("event=callQueued&callId=1&direction=in")

    assert_empty_reply(response)
    assert web.metric("sipgate_webhook_requests_total", event="unknown", code="200") == 1
    assert web.metric("sipgate_calls_total", direction="in") == 0
    web.check_invariant()


def test_unknown_hangup_cause_counts_as_other_and_fails_the_call(web: Web) -> None:
    web.post(new_call("1"))

    response = web.post(hangup("1", cause="solarFlare"))

    assert_empty_reply(response)
    assert web.metric("sipgate_hangups_total", direction="in", cause="other") == 1
    assert web.metric("sipgate_calls_ended_total", direction="in", outcome="failed") == 1
    samples = registry_samples(web.registry)
    assert not any("solarFlare" in sample.labels.values() for sample in samples)
    web.check_invariant()


def test_repeated_users_and_utf8_names_are_parsed(web: Web) -> None:
    body = (
        "event=newCall&direction=in&callId=1&from=anonymous&to=4915791234567"
        "&user%5B%5D=J%C3%BCrgen&user%5B%5D=Bob&user%5B%5D=voicemail"
        "&userId%5B%5D=w0&userId%5B%5D=w1&userId%5B%5D=w2"
    )
    web.post(body)

    assert isinstance(web.tracker, RecordingTracker)
    event = web.tracker.events[0]
    assert isinstance(event, NewCall)
    assert event.users == ("Jürgen", "Bob", "voicemail")
    assert event.user_ids == ("w0", "w1", "w2")
    assert not event.is_voicemail
    assert event.from_number == "anonymous"
    web.check_invariant()


def test_group_call_answered_by_a_member_is_answered(web: Web) -> None:
    web.post(new_call("1", users=("Jürgen", "Bob", "Carol")))
    web.post(answer("1", user="Bob"))
    web.post(hangup("1"))

    assert web.metric("sipgate_calls_ended_total", direction="in", outcome="answered") == 1
    web.check_invariant()


@pytest.mark.parametrize(
    "body",
    [
        "event=newCall&callId=1&direction=in",
        "event=answer&callId=1&direction=in",
        "event=hangup&callId=1&direction=in&cause=cancel",
        "event=dtmf&callId=1",
    ],
    ids=["newCall", "answer", "hangup", "dtmf"],
)
def test_optional_fields_may_be_missing(web: Web, body: str) -> None:
    if not body.startswith("event=newCall"):
        web.post("event=newCall&callId=1&direction=in")

    response = web.post(body)

    assert response.status_int == 200
    event = body.split("&")[0].removeprefix("event=")
    assert web.metric("sipgate_webhook_requests_total", event=event, code="200") == 1
    assert web.metric("sipgate_events_unmatched_total", event=event) == 0
    assert web.metric("sipgate_webhook_requests_total", event="invalid", code="400") == 0
    web.check_invariant()


def test_last_received_timestamp_is_the_clock_at_the_last_valid_event(web: Web) -> None:
    assert web.metric("sipgate_webhook_last_received_timestamp_seconds") == 0
    web.post(new_call("1"))
    assert web.metric("sipgate_webhook_last_received_timestamp_seconds") == NOW
    web.clock.now = NOW + 42
    web.post(hangup("1", cause="cancel"))
    assert web.metric("sipgate_webhook_last_received_timestamp_seconds") == NOW + 42
    web.check_invariant()


def test_webhook_request_duration_counts_every_request(web: Web) -> None:
    web.post(new_call("1"))
    web.post("callId=1", status=400)
    web.post(hangup("1"))

    assert web.metric("sipgate_webhook_request_duration_seconds_count") == 3
    assert web.metric("sipgate_webhook_request_duration_seconds_bucket", le="+Inf") == 3
    web.check_invariant()


def test_no_phone_number_call_id_or_name_becomes_a_label_value(web: Web) -> None:
    web.post(new_call("call-7f3a", users=("Jürgen",)))
    web.post(answer("call-7f3a", user="Jürgen"))
    web.post(hangup("call-7f3a"))

    text = web.app.get("/metrics").text
    for secret in (CALLER, CALLEE, "call-7f3a", "Jürgen", "4921199999", "1234567w0"):
        assert secret not in text
    web.check_invariant()


# --- POST /webhook: invalid bodies -------------------------------------------------------------

UTF8_BODY = "event=newCall&callId=1&direction=in"
INVALID = [
    pytest.param(b"callId=1&direction=in", FORM, "missing_field", id="no-event"),
    pytest.param(b"event=newCall&direction=in", FORM, "missing_field", id="no-callId"),
    pytest.param(b"event=newCall&callId=&direction=in", FORM, "invalid_field", id="empty-callId"),
    pytest.param(b"", FORM, "missing_field", id="empty-body"),
    pytest.param(b"event=newCall&callId=1&direction=up", FORM, "invalid_field", id="direction"),
    pytest.param(b"event=hangup&callId=1&direction=in", FORM, "missing_field", id="no-cause"),
    pytest.param(b'{"event": "newCall"}', "application/json", "content_type", id="json"),
    pytest.param(UTF8_BODY.encode(), None, "content_type", id="no-content-type"),
    pytest.param(
        UTF8_BODY.encode(),
        "application/x-www-form-urlencoded; charset=ISO-8859-1",
        "content_type",
        id="latin-1",
    ),
    pytest.param(UTF8_BODY.encode() + b"&user%5B%5D=%FF", FORM, "encoding", id="percent-ff"),
    pytest.param(UTF8_BODY.encode() + b"&user%5B%5D=J\xfcrgen", FORM, "encoding", id="raw-latin1"),
]


@pytest.mark.parametrize(("body", "content_type", "reason"), INVALID)
def test_invalid_body_is_refused_with_a_one_line_reason_and_counted(
    web: Web, body: bytes, content_type: str | None, reason: str
) -> None:
    request = webtest.TestRequest.blank("/webhook", method="POST", body=body)
    request.environ.pop("CONTENT_TYPE", None)
    if content_type is not None:
        request.environ["CONTENT_TYPE"] = content_type

    response = web.app.do_request(request, status=400)

    assert response.content_type == "text/plain"
    lines = response.text.splitlines()
    assert len(lines) == 1
    assert lines[0].strip()
    assert web.metric("sipgate_webhook_requests_total", event="invalid", code="400") == 1
    assert web.metric("sipgate_webhook_rejected_requests_total", reason=reason) == 1
    rejected = registry_samples(web.registry)
    others = [
        s.value
        for s in rejected
        if s.name == "sipgate_webhook_rejected_requests_total" and s.labels["reason"] != reason
    ]
    assert others
    assert sum(others) == 0
    assert web.metric("sipgate_calls_total", direction="in") == 0
    assert web.metric("sipgate_webhook_last_received_timestamp_seconds") == 0
    web.check_invariant()


def test_reason_names_the_problem(web: Web) -> None:
    response = web.post("event=newCall&direction=in", status=400)
    assert "callId" in response.text

    response = web.post(UTF8_BODY, status=400, content_type="application/json")
    assert "application/json" in response.text


def test_a_failing_tracker_gives_500_without_a_traceback(
    make_web: MakeWeb, caplog: pytest.LogCaptureFixture
) -> None:
    web = make_web(tracker_class=ExplodingTracker)

    response = web.post(new_call("1"), status=500)

    assert response.content_type == "text/plain"
    assert "Traceback" not in response.text
    assert "secret internals" not in response.text
    assert web.metric("sipgate_webhook_requests_total", event="newCall", code="500") == 1
    samples = registry_samples(web.registry)
    requests = [s for s in samples if s.name == "sipgate_webhook_requests_total"]
    assert sum(s.value for s in requests if s.labels["code"] == "500") == 1
    assert sum(s.value for s in requests if s.labels["code"] != "500") == 0
    assert "secret internals" in caplog.text  # logged for the operator instead


# --- Other routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_webhook_only_takes_post(web: Web, method: str) -> None:
    response = getattr(web.app, method)("/webhook", status=405)

    assert "POST" in response.headers["Allow"].split(",")
    assert response.content_type == "text/plain"
    assert web.metric("sipgate_webhook_requests_total", event="invalid", code="400") == 0


def test_unknown_path_is_a_plain_404(web: Web) -> None:
    response = web.app.get("/webhooks/../nothing-here", status=404)

    assert response.content_type == "text/plain"
    assert "<" not in response.text
    assert "404" in response.text


def test_status_page_shows_the_derived_webhook_url_and_links(web: Web) -> None:
    response = web.app.get("/", headers={"Host": "stats.example.com"})

    assert response.content_type == "text/html"
    assert "http://stats.example.com/webhook" in response.text
    hrefs = {link.get("href") for link in response.html.find_all("a")}
    assert {"metrics", "-/healthy", "-/ready"} <= hrefs
    for href in hrefs:
        web.app.get("/" + href, status=200)


def test_status_page_escapes_the_webhook_url(make_web: MakeWeb) -> None:
    web = make_web(public_url="https://stats.example.com/webhook?a=1&b=<2>")

    response = web.app.get("/")

    assert "https://stats.example.com/webhook?a=1&amp;b=&lt;2&gt;" in response.text
    assert "<2>" not in response.text


@pytest.mark.parametrize("header", ["Host", "X-Forwarded-Host"])
def test_a_host_that_is_no_host_name_never_reaches_the_page(make_web: MakeWeb, header: str) -> None:
    web = make_web(trusted_proxies="10.0.0.0/8")
    response = web.app.get("/", headers={header: "evil<script>x</script>"}, extra_environ=PROXY)

    assert "evil" not in response.text
    assert "/webhook" in response.text


def test_healthy(web: Web) -> None:
    response = web.app.get("/-/healthy", status=200)
    assert response.text.strip() == "Healthy"


def test_ready(web: Web) -> None:
    response = web.app.get("/-/ready", status=200)
    assert response.text.strip() == "Ready"


def test_not_ready(make_web: MakeWeb) -> None:
    web = make_web(not_ready=lambda: "still loading")

    assert web.app.get("/-/ready", status=503).text == "Not ready: still loading\n"
    web.app.get("/-/healthy", status=200)


# --- GET /metrics ------------------------------------------------------------------------------


def test_metrics_lists_every_contract_metric_with_its_type(web: Web) -> None:
    response = web.app.get("/metrics")

    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for name, kind in CONTRACT.items():
        assert f"# TYPE {name} {kind}\n" in response.text, name
        assert f"# HELP {name} " in response.text, name
    assert "process_cpu_seconds_total" not in response.text


def test_every_known_label_combination_exists_at_zero(web: Web) -> None:
    assert web.metric("sipgate_dtmf_events_total") == 0
    assert web.metric("sipgate_webhook_request_duration_seconds_count") == 0
    assert web.metric("sipgate_webhook_last_received_timestamp_seconds") == 0
    assert web.metric("sipgate_exporter_build_info", version=__version__) == 1
    for direction in DIRECTIONS:
        assert web.metric("sipgate_calls_total", direction=direction) == 0
        for outcome in OUTCOMES:
            labels = {"direction": direction, "outcome": outcome}
            assert web.metric("sipgate_calls_ended_total", **labels) == 0
            if outcome != "expired":
                assert web.metric("sipgate_call_wait_seconds_count", **labels) == 0
                assert web.metric("sipgate_call_wait_seconds_bucket", le="+Inf", **labels) == 0
        for state in STATES:
            assert web.metric("sipgate_calls_active", direction=direction, state=state) == 0
        for answered_by in ANSWERERS:
            labels = {"direction": direction, "answered_by": answered_by}
            assert web.metric("sipgate_call_duration_seconds_count", **labels) == 0
        for cause in CAUSES:
            assert web.metric("sipgate_hangups_total", direction=direction, cause=cause) == 0
    for event in (*EVENTS, "unknown"):
        assert web.metric("sipgate_webhook_requests_total", event=event, code="200") == 0
    assert web.metric("sipgate_webhook_requests_total", event="invalid", code="400") == 0
    for event in EVENTS:
        assert web.metric("sipgate_events_unmatched_total", event=event) == 0
    for reason in ("content_type", "encoding", "missing_field", "invalid_field"):
        assert web.metric("sipgate_webhook_rejected_requests_total", reason=reason) == 0
    web.check_invariant()


def test_metrics_speaks_openmetrics_when_asked(web: Web) -> None:
    response = web.app.get("/metrics", headers={"Accept": "application/openmetrics-text"})

    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE sipgate_calls counter\n" in response.text
    assert 'sipgate_calls_total{direction="in",line="other"} 0.0\n' in response.text


def test_metrics_is_gzipped_when_accepted(web: Web) -> None:
    # TestApp would decode the body itself, so call the WSGI app directly.
    request = webtest.TestRequest.blank("/metrics", headers={"Accept-Encoding": "gzip"})

    response = request.get_response(web.app.app)

    assert response.status_int == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert b"# TYPE sipgate_calls_total counter" in gzip.decompress(response.body)


def test_metrics_is_plain_without_accept_encoding(web: Web) -> None:
    request = webtest.TestRequest.blank("/metrics")

    response = request.get_response(web.app.app)

    assert "Content-Encoding" not in response.headers
    assert response.body.startswith(b"# HELP ")
