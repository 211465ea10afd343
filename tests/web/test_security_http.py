"""The guarded webhook over HTTP: WebTest, a real waitress server and a real exporter process."""

from __future__ import annotations

import base64
import http.client
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import webtest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry

from exporter.domain.events import Limits
from exporter.domain.tracker import CallTracker
from exporter.metrics import REJECT_REASONS
from exporter.web.guard import Guard, basic_auth_token, parse_networks
from exporter.web.server import Server, ServerGroup
from tests.http_helpers import (
    FORM,
    fetch,
    free_port,
    new_call,
    registry_samples,
    text_samples,
    try_fetch,
    value,
    wait_for,
)
from tests.in_process import build
from tests.programs import EXPORTER, clean_env, error_line
from tests.web.test_guard import public_pem, sign
from tests.web.test_server import run_exporter

USER, PASSWORD = "sipgate", "correct horse:battery"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SIPGATE = "217.116.118.254"
LIMIT = 1024
# Each exporter process here starts from nothing and shares no state file.
NO_STATE = {"SIPGATE_EXPORTER_STATE_PATH": ""}
STATISTICS = (
    "sipgate_calls_total",
    "sipgate_calls_ended_total",
    "sipgate_calls_active",
    "sipgate_hangups_total",
    "sipgate_events_unmatched_total",
    "sipgate_webhook_last_received_timestamp_seconds",
)


def full_guard(key: rsa.RSAPrivateKey) -> Guard:
    return Guard(
        max_body_bytes=LIMIT,
        signature_key=key.public_key(),
        basic_auth=basic_auth_token(USER, PASSWORD),
        allowed_networks=parse_networks(f"{SIPGATE}/32,2001:db8::/32"),
        trusted_proxies=parse_networks("10.0.0.0/8"),
    )


@dataclass
class Web:
    app: webtest.TestApp
    registry: CollectorRegistry
    key: rsa.RSAPrivateKey

    def post(
        self,
        body: str | bytes,
        status: int = 200,
        *,
        remote: str = SIPGATE,
        signature: str | None = "sign",
        headers: dict[str, str] | None = None,
    ) -> Any:
        raw = body.encode() if isinstance(body, str) else body
        sent = {"Content-Type": FORM, "Authorization": AUTH}
        if signature == "sign":
            signature = sign(self.key, raw)
        if signature is not None:
            sent["X-Sipgate-Signature"] = signature
        sent.update(headers or {})
        sent = {name: text for name, text in sent.items() if text}
        return self.app.post(
            "/webhook",
            raw,
            headers=sent,
            extra_environ={"REMOTE_ADDR": remote},
            status=status,
        )

    def metric(self, name: str, **labels: str) -> float:
        return value(registry_samples(self.registry), name, **labels)

    def statistics(self) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for s in registry_samples(self.registry)
            if s.name.startswith(STATISTICS)
        ]


@pytest.fixture
def web(private_key: rsa.RSAPrivateKey) -> Web:
    parts = build(guard=full_guard(private_key), limits=Limits(20, 5))
    return Web(webtest.TestApp(parts.app), parts.registry, private_key)


def test_signed_authenticated_request_from_sipgate_is_processed(web: Web) -> None:
    web.post(new_call("A"))
    assert web.metric("sipgate_calls_total", direction="in") == 1
    assert web.metric("sipgate_webhook_requests_total", event="newCall", code="200") == 1


def test_allowed_client_behind_a_trusted_proxy_is_processed(web: Web) -> None:
    web.post(new_call("A"), remote="10.0.0.2", headers={"X-Forwarded-For": f"1.1.1.1, {SIPGATE}"})
    web.post(new_call("B"), remote="2001:db8::5")
    assert web.metric("sipgate_calls_total", direction="in") == 2


BAD_AUTH = "Basic " + base64.b64encode(f"{USER}:not-the-password".encode()).decode()


# (id, post() arguments, status, reason)
REJECTIONS: list[tuple[str, dict[str, Any], int, str]] = [
    ("unknown source", {"remote": "203.0.113.9"}, 403, "source"),
    (
        "spoofed X-Forwarded-For",
        {"remote": "203.0.113.9", "headers": {"X-Forwarded-For": SIPGATE}},
        403,
        "source",
    ),
    (
        "client behind the proxy",
        {"remote": "10.0.0.2", "headers": {"X-Forwarded-For": f"{SIPGATE}, 198.51.100.1"}},
        403,
        "source",
    ),
    ("other IPv6 network", {"remote": "2001:db9::1"}, 403, "source"),
    ("no credentials", {"headers": {"Authorization": ""}}, 401, "auth"),
    ("wrong password", {"headers": {"Authorization": BAD_AUTH}}, 401, "auth"),
    ("malformed credentials", {"headers": {"Authorization": "Basic %%%"}}, 401, "auth"),
    ("no signature", {"signature": None}, 403, "signature"),
    ("garbage signature", {"signature": "@@not-base64@@"}, 403, "signature"),
    ("wrong signature", {"signature": base64.b64encode(b"x" * 256).decode()}, 403, "signature"),
]


@pytest.mark.parametrize(
    ("arguments", "status", "reason"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejection_status_reason_and_counters(
    web: Web, arguments: dict[str, Any], status: int, reason: str
) -> None:
    before = web.statistics()
    response = web.post(new_call("A"), status, **arguments)

    assert response.text.count("\n") == 1
    assert response.text.endswith("\n")
    assert response.content_type == "text/plain"
    assert web.metric("sipgate_webhook_rejected_requests_total", reason=reason) == 1
    assert web.metric("sipgate_webhook_requests_total", event="invalid", code=str(status)) == 1
    others = [r for r in REJECT_REASONS if r != reason]
    assert all(web.metric("sipgate_webhook_rejected_requests_total", reason=r) == 0 for r in others)
    assert web.statistics() == before
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="sipgate-exporter"'
    else:
        assert "WWW-Authenticate" not in response.headers


def test_signature_of_another_key_is_refused(web: Web, other_key: rsa.RSAPrivateKey) -> None:
    body = new_call("A")
    web.post(body, 403, signature=sign(other_key, body.encode()))
    assert web.metric("sipgate_webhook_rejected_requests_total", reason="signature") == 1


def test_body_over_the_limit_is_413_by_its_content_length(web: Web) -> None:
    body = new_call("A", users=["x" * 100] * 5) + "&pad=" + "p" * LIMIT
    response = web.post(body, 413)
    assert response.text == f"body exceeds the limit of {LIMIT} bytes\n"
    assert web.metric("sipgate_webhook_rejected_requests_total", reason="too_large") == 1
    assert web.metric("sipgate_webhook_requests_total", event="invalid", code="413") == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (new_call("A") + "&x=1" * 20, "more than 20 form fields"),
        (
            urlencode([("event", "newCall"), ("direction", "in"), ("callId", "A")])
            + "&user%5B%5D=u" * 6,
            "more than 5 user[] values",
        ),
    ],
    ids=["fields", "users"],
)
def test_too_many_fields_or_users_is_400(web: Web, body: str, message: str) -> None:
    before = web.statistics()
    response = web.post(body, 400)
    assert response.text == message + "\n"
    assert web.metric("sipgate_webhook_rejected_requests_total", reason="too_many_fields") == 1
    assert web.statistics() == before


def test_checks_run_cheapest_first(web: Web) -> None:
    # Everything wrong at once: the source is refused first, then size, then auth, then the
    # signature; parsing comes last.
    huge = "x" * (LIMIT + 1)
    no_auth = {"Authorization": ""}
    web.post(huge, 403, remote="203.0.113.9", signature=None, headers=no_auth)
    web.post(huge, 413, signature=None, headers=no_auth)
    web.post("garbage", 401, signature=None, headers=no_auth)
    web.post("garbage", 403, signature=None)
    web.post("garbage", 400)
    rejected = {
        reason: web.metric("sipgate_webhook_rejected_requests_total", reason=reason)
        for reason in ("source", "too_large", "auth", "signature", "missing_field")
    }
    assert set(rejected.values()) == {1}


def test_each_reason_is_logged_once_at_warning_without_secrets(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    signature = base64.b64encode(b"y" * 256).decode()
    for _ in range(3):
        web.post(new_call("A"), 401, headers={"Authorization": BAD_AUTH})
        web.post(new_call("A"), 403, signature=signature)
        web.post(new_call("A"), 403, remote="203.0.113.9")
        web.post("x" * (LIMIT + 1), 413)

    rejections = [r for r in caplog.records if r.getMessage().startswith("rejected webhook")]
    warnings = [r.getMessage() for r in rejections if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert {w.split("(")[1].split(")")[0] for w in warnings} == {
        "auth",
        "signature",
        "source",
        "too_large",
    }
    assert sum(r.levelno == logging.DEBUG for r in rejections) == 8
    everything = caplog.text
    for secret in (PASSWORD, "not-the-password", BAD_AUTH.split()[1], AUTH.split()[1], signature):
        assert secret not in everything


def test_without_a_guard_everything_but_the_size_is_accepted() -> None:
    app = webtest.TestApp(build().app)
    app.post("/webhook", new_call("A"), headers={"Content-Type": FORM})
    app.post("/webhook", "x" * 20_000, headers={"Content-Type": FORM}, status=413)


def test_landing_page_never_shows_credentials_of_the_public_url() -> None:
    url = f"https://{USER}:s3cr3t@stats.example.com/webhook"
    app = webtest.TestApp(build(public_url=url).app)
    page = app.get("/").text
    assert "s3cr3t" not in page
    assert "https://stats.example.com/webhook" in page
    # sipgate itself gets the URL with the credentials, for answer and hangup.
    reply = app.post("/webhook", new_call("A"), headers={"Content-Type": FORM})
    assert f'onHangup="{url}"' in reply.text


# --- a real waitress server ---------------------------------------------------------------------


@dataclass
class Live:
    url: str
    port: int
    tracker: CallTracker
    registry: CollectorRegistry
    key: rsa.RSAPrivateKey

    def metric(self, name: str, **labels: str) -> float:
        return value(registry_samples(self.registry), name, **labels)


@pytest.fixture
def live(private_key: rsa.RSAPrivateKey) -> Iterator[Live]:
    guard = Guard(
        max_body_bytes=LIMIT,
        signature_key=private_key.public_key(),
        allowed_networks=parse_networks("198.51.100.0/24,::1/128"),
        trusted_proxies=parse_networks("127.0.0.1/32"),
    )
    parts = build(guard=guard)
    tracker, registry = parts.tracker, parts.registry
    server = Server(parts.app, "127.0.0.1", 0, 2, max_body_bytes=LIMIT, read_timeout=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Live(
        f"http://127.0.0.1:{server.port}/webhook", server.port, tracker, registry, private_key
    )
    server.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()


def signed_headers(key: rsa.RSAPrivateKey, body: bytes, client: str) -> dict[str, str]:
    return {"X-Sipgate-Signature": sign(key, body), "X-Forwarded-For": client}


def test_forwarded_for_counts_only_from_the_trusted_proxy(live: Live) -> None:
    body = new_call("A").encode()
    # The test client is 127.0.0.1, the trusted proxy; the client it names decides.
    assert fetch(live.url, body, signed_headers(live.key, body, "198.51.100.7")).status == 200
    assert fetch(live.url, body, signed_headers(live.key, body, "203.0.113.1")).status == 403
    assert fetch(live.url, body, {"X-Sipgate-Signature": sign(live.key, body)}).status == 403
    assert live.metric("sipgate_webhook_rejected_requests_total", reason="source") == 2


def test_ipv6_client_on_an_ipv6_socket(private_key: rsa.RSAPrivateKey) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    guard = Guard(
        signature_key=private_key.public_key(), allowed_networks=parse_networks("::1/128")
    )
    parts = build(guard=guard)
    server = Server(parts.app, "::1", 0, 2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        body = new_call("A").encode()
        reply = fetch(
            f"http://[::1]:{server.port}/webhook",
            body,
            {"X-Sipgate-Signature": sign(private_key, body)},
        )
        assert reply.status == 200
        assert parts.tracker.stats.calls_started[("in", "other")] == 1
    finally:
        server.stop()
        thread.join(timeout=15)


def raw_exchange(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


def test_body_over_the_limit_is_413_with_content_length(live: Live) -> None:
    body = b"event=newCall&" + b"x" * LIMIT
    reply = fetch(live.url, body, signed_headers(live.key, body, "198.51.100.7"))
    assert reply.status == 413
    assert reply.text == f"body exceeds the limit of {LIMIT} bytes\n"
    assert live.metric("sipgate_webhook_rejected_requests_total", reason="too_large") == 1
    assert live.metric("sipgate_webhook_requests_total", event="invalid", code="413") == 1


def test_chunked_body_over_the_limit_is_413(live: Live) -> None:
    chunk = b"x" * 600
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    request = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"X-Forwarded-For: 198.51.100.7\r\nContent-Type: " + FORM.encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + chunks
    )
    status, body = raw_exchange(live.port, request)
    assert status == 413
    assert body == f"body exceeds the limit of {LIMIT} bytes\n".encode()
    assert live.metric("sipgate_webhook_rejected_requests_total", reason="too_large") == 1


def test_chunked_body_within_the_limit_is_read_whole_and_counted(live: Live) -> None:
    body = new_call("A").encode()
    halves = (body[:20], body[20:])
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(half), half) for half in halves) + b"0\r\n\r\n"
    request = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"X-Forwarded-For: 198.51.100.7\r\nContent-Type: " + FORM.encode() + b"\r\n"
        b"X-Sipgate-Signature: " + sign(live.key, body).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + chunks
    )
    status, reply = raw_exchange(live.port, request)
    assert status == 200, reply
    assert b"onAnswer=" in reply
    assert live.metric("sipgate_calls_total", direction="in") == 1


def test_absurd_body_is_refused_by_waitress_before_the_app(live: Live) -> None:
    # Over waitress's own cap (a few times the limit) nothing is buffered or counted.
    request = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
        b"Connection: close\r\n\r\n"
    )
    status, _ = raw_exchange(live.port, request)
    assert status == 413
    assert live.tracker.stats.calls_started[("in", "other")] == 0


def test_slow_client_is_disconnected_after_the_read_timeout(live: Live) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nevent=")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, no answer
        assert time.monotonic() - started < 5


def test_health_and_metrics_stay_on_the_main_address_by_default(live: Live) -> None:
    base = live.url.removesuffix("/webhook")
    assert fetch(base + "/metrics").status == 200
    assert fetch(base + "/-/healthy").status == 200


# --- the separate metrics address -----------------------------------------------------------


@pytest.fixture
def split() -> Iterator[tuple[str, str]]:
    parts = build(serve_metrics=False)
    main = Server(parts.app, "127.0.0.1", 0, 2)
    metrics = Server(parts.metrics_app, "127.0.0.1", 0, 1)
    group = ServerGroup([main, metrics])
    thread = threading.Thread(target=group.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{main.port}", f"http://127.0.0.1:{metrics.port}"
    group.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()


def test_metrics_only_on_the_metrics_address(split: tuple[str, str]) -> None:
    main, metrics = split
    assert fetch(main + "/webhook", new_call("A")).status == 200
    assert fetch(main + "/metrics").status == 404
    reply = fetch(metrics + "/metrics")
    assert reply.status == 200
    assert value(text_samples(reply.text), "sipgate_calls_total", direction="in") == 1
    assert fetch(metrics + "/webhook", new_call("B")).status in (404, 405)
    assert fetch(metrics + "/-/ready").status == 200
    assert "separate address" in fetch(main + "/").text
    # Behind an allow-list the main address may drop an operator: the page is here too.
    page = fetch(metrics + "/")
    assert page.status == 200
    assert "/webhook" in page.text


# --- the exporter process -----------------------------------------------------------------------


def write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    path.write_bytes(public_pem(key))
    return path


def test_exporter_process_with_every_check_and_a_metrics_address(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    port, metrics_port = free_port(), free_port()
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    log = tmp_path / "exporter.log"
    args = [
        *EXPORTER,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.metrics-address=127.0.0.1:{metrics_port}",
        f"--webhook.signature-key={write_key(tmp_path / 'key.pem', private_key)}",
        f"--webhook.basic-auth-user={USER}",
        f"--webhook.basic-auth-password-file={password_file}",
        "--webhook.allowed-networks=127.0.0.0/8",
        f"--webhook.public-url=https://{USER}:x@stats.example.com/webhook",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=out, env=clean_env(**NO_STATE))
    try:
        wait_for(lambda: try_fetch(f"http://127.0.0.1:{metrics_port}/-/ready"), timeout=15)
        wait_for(lambda: try_fetch(f"http://127.0.0.1:{port}/-/ready"), timeout=15)
        body = new_call("A").encode()
        headers = {"X-Sipgate-Signature": sign(private_key, body), "Authorization": AUTH}
        assert fetch(f"http://127.0.0.1:{port}/webhook", body, headers).status == 200
        assert fetch(f"http://127.0.0.1:{port}/webhook", body).status == 401
        assert fetch(f"http://127.0.0.1:{port}/metrics").status == 404
        samples = text_samples(fetch(f"http://127.0.0.1:{metrics_port}/metrics").text)
        assert value(samples, "sipgate_calls_total", direction="in") == 1
        assert value(samples, "sipgate_webhook_rejected_requests_total", reason="auth") == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert PASSWORD not in text
    assert "x@stats" not in text
    assert f"127.0.0.1:{metrics_port}" in text


def test_signature_check_is_on_by_default(tmp_path: Path) -> None:
    port = free_port()
    args = [*EXPORTER, f"--web.listen-address=127.0.0.1:{port}"]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env(**NO_STATE)
    )
    try:
        wait_for(lambda: try_fetch(f"http://127.0.0.1:{port}/-/ready"), timeout=15)
        reply = fetch(f"http://127.0.0.1:{port}/webhook", new_call("A"))
        assert reply.status == 403
        assert reply.text == "missing X-Sipgate-Signature header\n"
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (["--webhook.signature-key=/nonexistent.pem"], {}, "--webhook.signature-key: cannot read"),
        (["--webhook.signature-key=README.md"], {}, "not a PEM public key"),
        (["--webhook.basic-auth-user=u"], {}, "needs a password"),
        ([], {"SIPGATE_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD": "pw"}, "needs --webhook.basic"),
        (["--webhook.basic-auth-user=a:b"], {}, "cannot contain ':'"),
        (["--webhook.allowed-networks=10.0.0.1/8"], {}, "invalid network '10.0.0.1/8'"),
        (["--web.trusted-proxies=proxy"], {}, "--web.trusted-proxies: invalid network"),
        (["--webhook.verify-signature=maybe"], {}, "use true or false"),
        (["--webhook.max-body-bytes=16k"], {}, "invalid size '16k'"),
        (["--web.read-timeout=10ms"], {}, "at least 1s"),
        (
            ["--web.listen-address=:9850", "--web.metrics-address=:9850"],
            {},
            "must differ",
        ),
    ],
)
def test_bad_security_settings_exit_2_with_one_line(
    flags: list[str], env: dict[str, str], expected: str
) -> None:
    line = error_line(run_exporter(*flags, **env))
    assert expected in line
    assert "pw" not in line.split("error:")[1].replace("password", "")


def test_password_comes_from_the_environment() -> None:
    port = free_port()
    args = [
        *EXPORTER,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--webhook.basic-auth-user={USER}",
        "--webhook.verify-signature=false",
    ]
    env = clean_env(SIPGATE_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD=PASSWORD, **NO_STATE)
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        wait_for(lambda: try_fetch(f"http://127.0.0.1:{port}/-/ready"), timeout=15)
        url = f"http://127.0.0.1:{port}/webhook"
        assert fetch(url, new_call("A"), {"Authorization": AUTH}).status == 200
        assert fetch(url, new_call("B"), {"Authorization": BAD_AUTH}).status == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert "public-url carries no credentials" in stderr
    assert PASSWORD not in stderr
    assert os.environ.get("SIPGATE_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD") is None
