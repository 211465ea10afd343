"""The exporter's HTTP face: a Bottle app with webhook, landing page, health and metrics."""

from __future__ import annotations

import contextlib
import html
import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

import bottle
from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__
from exporter.domain.events import (
    DEFAULT_LIMITS,
    Answer,
    Dtmf,
    Event,
    Hangup,
    Limits,
    NewCall,
    UnknownEvent,
    check_content_type,
    event_label,
    parse_event,
)
from exporter.domain.tracker import CallTracker, EndedCall
from exporter.errors import InvalidEventError, Rejected, StateError
from exporter.logs import mask_number
from exporter.metrics import INVALID_EVENT
from exporter.relay.relay import Incoming, Relay
from exporter.web.guard import Guard

log = logging.getLogger(__name__)

WEBHOOK_PATH: Final = "/webhook"
XML_CONTENT_TYPE: Final = "application/xml; charset=utf-8"
TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"
EMPTY_REPLY: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n<Response/>\n'


@lru_cache(maxsize=64)
def subscribe_reply(webhook_url: str) -> bytes:
    """The reply to newCall that asks sipgate to send answer and hangup to `webhook_url`."""
    url = quoteattr(webhook_url)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response onAnswer={url} onHangup={url}/>\n'
    ).encode()


# What of a request its webhook URL depends on: the rest need not be read again each time.
_URL_KEYS: Final = (
    "HTTP_X_FORWARDED_PROTO",
    "wsgi.url_scheme",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
)


def request_webhook_url(environ: dict[str, Any]) -> str:
    """This exporter's webhook URL as the client reached it (honours X-Forwarded-Proto/Host)."""
    return _webhook_url(tuple(map(environ.get, _URL_KEYS)))


@lru_cache(maxsize=64)
def _webhook_url(values: tuple[str | None, ...]) -> str:
    environ = {key: value for key, value in zip(_URL_KEYS, values, strict=True) if value}
    request = bottle.BaseRequest(environ)
    parts = request.urlparts
    path = str(request.script_name).rstrip("/") + WEBHOOK_PATH
    return urlunsplit((str(parts.scheme), str(parts.netloc), path, "", ""))


def create_app(
    tracker: CallTracker,
    registry: CollectorRegistry,
    public_url: str | None = None,
    clock: Callable[[], float] = time.time,
    ready: Callable[[], bool] = lambda: True,
    guard: Guard | None = None,
    limits: Limits = DEFAULT_LIMITS,
    serve_metrics: bool = True,
    reload: Callable[[], tuple[bool, str]] | None = None,
    relay: Relay | None = None,
) -> bottle.Bottle:
    """Build the WSGI app; `clock` gives the unix time at which events are received.

    `guard` decides which webhook requests are processed; without one only the body size is
    checked. With `serve_metrics` false, /metrics is left to `create_metrics_app`. With a
    `relay`, counted events are passed on to an upstream application as well.
    """
    app = bottle.Bottle()
    # Every route returns bytes or text: the JSON plugin would only wrap each call.
    app.uninstall("json")
    guard = guard or Guard()
    warned_reasons: set[str] = set()

    def webhook_url() -> str:
        return public_url or request_webhook_url(bottle.request.environ)

    def webhook() -> bottle.HTTPResponse:
        started = time.perf_counter()
        label = INVALID_EVENT
        extra_headers: tuple[tuple[str, str], ...] = ()
        try:
            try:
                # Cheap and unauthenticated checks first: source, size, basic auth, signature.
                environ = bottle.request.environ
                guard.check_request(
                    environ.get("REMOTE_ADDR", ""),
                    environ.get("HTTP_X_FORWARDED_FOR"),
                    bottle.request.content_length,
                    environ.get("HTTP_AUTHORIZATION"),
                )
                # Straight from the server: bottle's request.body would copy it twice.
                raw = environ["wsgi.input"].read(guard.max_body_bytes + 1)
                guard.check_body(raw, environ.get("HTTP_X_SIPGATE_SIGNATURE"))
                check_content_type(bottle.request.content_type)
                event = parse_event(raw, limits)
            except (Rejected, InvalidEventError) as error:
                status = error.status if isinstance(error, Rejected) else 400
                extra_headers = error.headers if isinstance(error, Rejected) else ()
                tracker.record_rejection(error.reason, status)
                _log_rejection(error, warned_reasons)
                body, content_type = f"{error}\n".encode(), TEXT_CONTENT_TYPE
            else:
                label = event_label(event)
                handled = tracker.handle(event, clock(), raw)
                _log_event(event, handled.matched, handled.ended)
                status, content_type = 200, XML_CONTENT_TYPE
                body = subscribe_reply(webhook_url()) if isinstance(event, NewCall) else EMPTY_REPLY
                if relay is not None:
                    incoming = Incoming.from_environ(environ, raw)
                    if isinstance(event, NewCall):
                        body = relay.new_call(event, incoming, webhook_url()) or body
                    elif isinstance(event, Dtmf):
                        body = relay.dtmf(event, incoming, webhook_url()) or body
                    else:
                        relay.follow_up(event, incoming)
        except Exception:
            log.exception("webhook request failed")
            # A failing state file fails this too, once counted; the reply is the same.
            with contextlib.suppress(StateError):
                tracker.record_error(label)
            status, body, content_type = 500, b"internal error\n", TEXT_CONTENT_TYPE
        tracker.observe_request(time.perf_counter() - started)
        headers = {"Content-Type": content_type, **dict(extra_headers)}
        return bottle.HTTPResponse(body, status=status, headers=headers)

    def webhook_get() -> bottle.HTTPResponse:
        return _text(405, "sipgate.io posts events here; use POST\n", Allow="POST")

    def landing() -> bottle.HTTPResponse:
        page = _landing_page(_without_credentials(webhook_url()), serve_metrics)
        return bottle.HTTPResponse(page, headers={"Content-Type": "text/html; charset=utf-8"})

    def reload_config() -> bottle.HTTPResponse:
        if reload is None:
            return _text(403, "lifecycle API is off; start with --web.enable-lifecycle\n")
        reloaded, message = reload()
        return _text(200 if reloaded else 500, f"{message}\n")

    app.route("/-/reload", "POST", reload_config)
    app.route(WEBHOOK_PATH, "POST", webhook)
    app.route(WEBHOOK_PATH, "GET", webhook_get)
    app.route("/", "GET", landing)
    _add_common_routes(app, registry if serve_metrics else None, ready)
    return app


def create_metrics_app(
    registry: CollectorRegistry, ready: Callable[[], bool] = lambda: True
) -> bottle.Bottle:
    """The app of the separate metrics address: /metrics, health and readiness only."""
    app = bottle.Bottle()
    app.uninstall("json")
    _add_common_routes(app, registry, ready)
    return app


def _add_common_routes(
    app: bottle.Bottle, registry: CollectorRegistry | None, ready: Callable[[], bool]
) -> None:
    def healthy() -> bottle.HTTPResponse:
        return _text(200, "Healthy\n")

    def is_ready() -> bottle.HTTPResponse:
        return _text(200, "Ready\n") if ready() else _text(503, "Not ready\n")

    app.route("/-/healthy", "GET", healthy)
    app.route("/-/ready", "GET", is_ready)
    if registry is not None:
        app.route("/metrics", "GET", _metrics_handler(registry))
    app.error_handler.update({404: _plain_error, 405: _plain_error})


def _metrics_handler(registry: CollectorRegistry) -> Callable[[], bottle.HTTPResponse]:
    metrics_app = make_wsgi_app(registry)

    def metrics() -> bottle.HTTPResponse:
        reply: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            reply.update(status=status, headers=headers)

        body = b"".join(metrics_app(bottle.request.environ, start_response))
        return bottle.HTTPResponse(body, status=reply["status"], headers=dict(reply["headers"]))

    return metrics


def _plain_error(error: bottle.HTTPError) -> str:
    bottle.response.content_type = TEXT_CONTENT_TYPE
    return f"{error.status_line}\n"


def _text(status: int, text: str, **headers: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        text, status=status, headers={"Content-Type": TEXT_CONTENT_TYPE, **headers}
    )


def _log_rejection(error: InvalidEventError | Rejected, warned_reasons: set[str]) -> None:
    # Once per reason at warning, so a misconfigured sender cannot flood the log. The messages
    # name no credential, signature or password.
    level = logging.DEBUG if error.reason in warned_reasons else logging.WARNING
    warned_reasons.add(error.reason)
    log.log(level, "rejected webhook request (%s): %s", error.reason, error)


def _log_event(event: Event, matched: bool, ended: tuple[EndedCall, ...]) -> None:
    if log.isEnabledFor(logging.DEBUG):
        details = f"call={event.call_id}"
        if isinstance(event, NewCall):
            details += (
                f" direction={event.direction} from={mask_number(event.from_number)}"
                f" to={mask_number(event.to_number)} users={len(event.users)}"
                f" orig={event.orig_call_id or '-'}"
            )
        elif isinstance(event, Hangup):
            details += f" cause={event.cause}"
        elif isinstance(event, Answer):
            details += f" voicemail={event.is_voicemail}"
        name = event.name if isinstance(event, UnknownEvent) else event_label(event)
        log.debug("event %s %s%s", name, details, "" if matched else " (unmatched)")
    for call in ended:
        log_call_ended(call)


def log_call_ended(call: EndedCall) -> None:
    """One info line per ended call."""
    log.info(
        "call %s ended: direction=%s outcome=%s legs=%d wait=%s duration=%s",
        call.call_id,
        call.direction,
        call.outcome,
        call.legs,
        _seconds(call.wait),
        _seconds(call.duration),
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _without_credentials(url: str) -> str:
    """The URL without `user:password@`: the landing page is public."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _landing_page(webhook_url: str, links_metrics: bool = True) -> str:
    url = html.escape(webhook_url)
    metrics_link = (
        '<li><a href="metrics">Metrics</a> (scrape this with Prometheus)</li>'
        if links_metrics
        else "<li>Metrics are served on a separate address.</li>"
    )
    https_note = (
        ""
        if webhook_url.startswith("https://")
        else "<p><strong>Note:</strong> sipgate requires HTTPS for production webhook URLs; "
        "put a TLS reverse proxy or tunnel in front and set <code>--webhook.public-url</code>.</p>"
    )
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>sipgate.io exporter</title></head>
<body>
<h1>sipgate.io call statistics exporter</h1>
<p>Version {html.escape(__version__)}. It receives sipgate.io push events and exposes call
statistics for Prometheus.</p>
<p>In the sipgate console, under Webhooks &rarr; URLs, enter this URL for incoming and
outgoing calls:</p>
<pre>{url}</pre>
{https_note}
<ul>
{metrics_link}
<li><a href="-/healthy">Health</a> and <a href="-/ready">readiness</a></li>
</ul>
</body>
</html>
"""
