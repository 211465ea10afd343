"""POST /webhook: check the request, parse the event, record it, and reply to sipgate."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import lru_cache
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
from exporter.errors import RequestError, StateError
from exporter.recorder import Recorder
from exporter.web.guard import Guard
from exporter.web.replies import XML_CONTENT_TYPE, OwnReplies, Replies
from exporter.web.requests import INVALID

log = logging.getLogger(__name__)

WEBHOOK_PATH: Final = "/webhook"
TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"

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


def text_response(status: int, text: str, **headers: str) -> bottle.HTTPResponse:
    """A plain-text reply."""
    return bottle.HTTPResponse(
        text, status=status, headers={"Content-Type": TEXT_CONTENT_TYPE, **headers}
    )


class Webhook:
    """Receives sipgate.io events; `clock` gives the unix time at which they are received."""

    def __init__(
        self,
        recorder: Recorder,
        guard: Guard | None = None,
        limits: Limits = DEFAULT_LIMITS,
        replies: Replies | None = None,
        public_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._recorder = recorder
        self._guard = guard or Guard()
        self._limits = limits
        self._replies = replies or OwnReplies()
        self._public_url = public_url
        self._clock = clock
        self._warned_reasons: set[str] = set()

    def url(self) -> str:
        """The webhook URL to give sipgate: the configured one, or the one this request used."""
        return self._public_url or request_webhook_url(bottle.request.environ)

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
                handled = self._recorder.event(event, body, self._clock())
                log_event(event, handled.matched)
                log_calls_ended(handled.ended)
                environ = bottle.request.environ
                reply = self._replies.reply(event, environ, body, self.url())
                response = bottle.HTTPResponse(reply, headers={"Content-Type": XML_CONTENT_TYPE})
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

    def _fail(self, label: str) -> bottle.HTTPResponse:
        # A failing state file fails this too, once counted; the reply is the same.
        with contextlib.suppress(StateError):
            self._recorder.error(label)
        return text_response(500, "internal error\n")
