"""POST /webhook: check the request, parse the event, record it, and reply to sipgate."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlunsplit

import bottle

from exporter.call_log import log_calls_ended, log_event
from exporter.domain.events import (
    DEFAULT_LIMITS,
    Limits,
    check_content_type,
    event_label,
    parse_event,
)
from exporter.errors import RequestError, StateError, StateUnavailableError
from exporter.recorder import Recorder
from exporter.web.guard import Guard, Network, parse_address, within
from exporter.web.replies import XML_CONTENT_TYPE, OwnReplies, Replies
from exporter.web.requests import INVALID

log = logging.getLogger(__name__)

WEBHOOK_PATH: Final = "/webhook"
TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"

_FORWARDED_SCHEMES: Final = frozenset({"http", "https"})
_HOST: Final = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def request_webhook_url(environ: Mapping[str, Any], trusted_proxies: tuple[Network, ...]) -> str:
    """This exporter's webhook URL as the client reached it.

    X-Forwarded-Proto (`http` or `https`) and X-Forwarded-Host count only from a trusted proxy.
    """
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    host = str(environ.get("HTTP_HOST", ""))
    peer = parse_address(environ.get("REMOTE_ADDR", "")) if trusted_proxies else None
    if peer is not None and within(peer, trusted_proxies):
        proto = _nearest(environ.get("HTTP_X_FORWARDED_PROTO")).lower()
        scheme = proto if proto in _FORWARDED_SCHEMES else scheme
        host = _nearest(environ.get("HTTP_X_FORWARDED_HOST")) or host
    if not _HOST.fullmatch(host):
        host = _server_host(environ, scheme)
    path = str(environ.get("SCRIPT_NAME", "")).rstrip("/") + WEBHOOK_PATH
    return urlunsplit((scheme, host, path, "", ""))


def _nearest(header: str | None) -> str:
    """The last of a header's comma-separated values: the one the trusted proxy set."""
    return (header or "").rpartition(",")[2].strip()


def _server_host(environ: Mapping[str, Any], scheme: str) -> str:
    name = environ.get("SERVER_NAME") or "localhost"
    port = environ.get("SERVER_PORT") or ""
    default = "443" if scheme == "https" else "80"
    return name if port in ("", default) else f"{name}:{port}"


def text_response(status: int, text: str, **headers: str) -> bottle.HTTPResponse:
    """A plain-text reply."""
    return bottle.HTTPResponse(
        text, status=status, headers={"Content-Type": TEXT_CONTENT_TYPE, **headers}
    )


class Webhook:
    """Receives sipgate.io events, timed by the recorder's clock."""

    def __init__(
        self,
        recorder: Recorder,
        guard: Guard | None = None,
        limits: Limits = DEFAULT_LIMITS,
        replies: Replies | None = None,
        public_url: str | None = None,
    ) -> None:
        self._recorder = recorder
        self._guard = guard or Guard()
        self._limits = limits
        self._replies = replies or OwnReplies()
        self._public_url = public_url
        self._warned_reasons: set[str] = set()

    def url(self) -> str:
        """The webhook URL to give sipgate: the configured one, or the one this request used."""
        return self._public_url or request_webhook_url(
            bottle.request.environ, self._guard.trusted_proxies
        )

    def post(self) -> bottle.HTTPResponse:
        """Answer one webhook request; every request is counted and timed."""
        started = time.perf_counter()
        label = INVALID
        try:
            try:
                body = self._read_body()
                event = parse_event(body, self._limits)
            except RequestError as error:
                response = self._refuse(error)
            else:
                label = event_label(event)
                handled = self._recorder.event(event, body, self._recorder.clock())
                log_event(event, handled.matched)
                log_calls_ended(handled.ended)
                environ = bottle.request.environ
                reply = self._replies.reply(event, environ, body, self.url)
                response = bottle.HTTPResponse(reply, headers={"Content-Type": XML_CONTENT_TYPE})
        except StateError as error:
            # The store logs each episode of failures once; a traceback each would flood the log.
            log.debug("webhook request refused: %s", error)
            unavailable = isinstance(error, StateUnavailableError)
            response = self._fail(label, 503 if unavailable else 500)
        except Exception:
            log.exception("webhook request failed")
            response = self._fail(label)
        self._recorder.requests.observe(time.perf_counter() - started)
        return response

    def get(self) -> bottle.HTTPResponse:
        """Say that events are posted here."""
        return text_response(405, "sipgate.io posts events here; use POST\n", Allow="POST")

    def _read_body(self) -> bytes:
        """The body of a request that passed the guard, in UTF-8 form encoding."""
        # Cheap and unauthenticated checks first: source, size, basic auth, signature.
        request = bottle.request
        environ = request.environ
        self._guard.check_request(
            environ.get("REMOTE_ADDR", ""),
            environ.get("HTTP_X_FORWARDED_FOR"),
            request.content_length,
            environ.get("HTTP_AUTHORIZATION"),
        )
        # Straight from the server: bottle's request.body would copy it twice.
        body: bytes = environ["wsgi.input"].read(self._guard.max_body_bytes + 1)
        self._guard.check_body(body, environ.get("HTTP_X_SIPGATE_SIGNATURE"))
        check_content_type(request.content_type)
        return body

    def _refuse(self, error: RequestError) -> bottle.HTTPResponse:
        self._recorder.rejection(error.reason, error.status)
        # Once per reason at warning, so a misconfigured sender cannot flood the log. The
        # messages name no credential, signature or password.
        level = logging.DEBUG if error.reason in self._warned_reasons else logging.WARNING
        self._warned_reasons.add(error.reason)
        log.log(level, "rejected webhook request (%s): %s", error.reason, error)
        return text_response(error.status, f"{error}\n", **dict(error.headers))

    def _fail(self, label: str, status: int = 500) -> bottle.HTTPResponse:
        # A failing state fails this too, once counted; the reply is the same.
        with contextlib.suppress(StateError):
            self._recorder.error(label, status)
        if status == 503:
            return text_response(503, "the state cannot be written now; try another replica\n")
        return text_response(500, "internal error\n")
