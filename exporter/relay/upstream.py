"""Requests to the upstream application: what of sipgate's request is passed on, and how."""

from __future__ import annotations

import http.client
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from exporter import __version__
from exporter.errors import UpstreamError

ERROR: Final = "error"
TIMEOUT: Final = "timeout"
# Bounds on what an upstream may send back; sipgate's replies are a few hundred bytes.
MAX_REPLY_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Incoming:
    """The parts of sipgate's request that are passed on: body and the headers upstreams use."""

    body: bytes
    content_type: str | None = None
    signature: str | None = None
    user_agent: str | None = None
    forwarded_for: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], body: bytes) -> Incoming:
        """The request in a WSGI environ, with the client appended to X-Forwarded-For."""
        client = str(environ.get("REMOTE_ADDR", ""))
        earlier = str(environ.get("HTTP_X_FORWARDED_FOR", "")).strip()
        return cls(
            body=body,
            content_type=environ.get("CONTENT_TYPE") or None,
            signature=environ.get("HTTP_X_SIPGATE_SIGNATURE"),
            user_agent=environ.get("HTTP_USER_AGENT"),
            forwarded_for=f"{earlier}, {client}" if earlier and client else earlier or client,
        )

    def headers(self) -> dict[str, str]:
        """The headers of the forwarded request; X-Sipgate-Signature exactly as received."""
        headers = {"User-Agent": self.user_agent or f"sipgate-exporter/{__version__}"}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        if self.signature is not None:
            headers["X-Sipgate-Signature"] = self.signature
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        headers["Accept"] = "application/xml, text/xml"
        return headers


Post = Callable[[str, bytes, Mapping[str, str], float], tuple[int, bytes]]


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    """POST `body` to `url`; return (status, reply body), raise UpstreamError.

    `timeout` bounds the whole exchange, so that an upstream trickling bytes cannot hold on.
    Credentials in the URL become basic auth; redirects are not followed.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    headers = dict(headers)
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + b64encode(credentials.encode()).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        _remaining(connection, deadline)
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_REPLY_BYTES:  # one byte more than allowed shows a reply too large
            _remaining(connection, deadline)
            chunk = response.read1(MAX_REPLY_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return response.status, b"".join(chunks)
    except TimeoutError:
        raise UpstreamError(TIMEOUT, f"no reply within {timeout:g}s") from None
    except (OSError, http.client.HTTPException) as error:
        raise UpstreamError(ERROR, f"{type(error).__name__}: {error}") from None
    finally:
        connection.close()


def _remaining(connection: http.client.HTTPConnection, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    if connection.sock is not None:
        connection.sock.settimeout(left)
