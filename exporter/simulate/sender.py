"""Sign webhook bodies as sipgate does and POST them to an exporter over HTTP."""

from __future__ import annotations

import base64
import http.client
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from exporter.web.guard import SIGNATURE_HEADER, basic_auth_token, read_key_file


def load_signing_key(path: str) -> RSAPrivateKey:
    """The RSA private key in an unencrypted PEM file; raise ValueError naming the file."""
    pem = read_key_file(path)
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"key file {path!r} is not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"key file {path!r} is not an RSA key")
    return key


def sign_body(key: RSAPrivateKey, body: bytes) -> str:
    """The X-Sipgate-Signature of `body`: base64 RSA-SHA256 PKCS#1 v1.5, as sipgate signs."""
    return base64.b64encode(key.sign(body, PKCS1v15(), SHA256())).decode()


class Sender:
    """POSTs form bodies over one kept-alive HTTP connection, reconnecting once on failure.

    Credentials in the target URL become basic auth; with `sign_key` every body is signed.
    """

    def __init__(
        self, target: str, timeout: float = 10.0, sign_key: RSAPrivateKey | None = None
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid target {target!r} (use e.g. http://localhost:9850/webhook)")
        self._path = parts.path or "/webhook"
        # Shown in messages: the target without its credentials.
        self.target = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        host, port = parts.hostname, parts.port
        self._connect: Callable[[], http.client.HTTPConnection] = (
            (lambda: http.client.HTTPSConnection(host, port, timeout=timeout))
            if parts.scheme == "https"
            else (lambda: http.client.HTTPConnection(host, port, timeout=timeout))
        )
        self._headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "User-Agent": "sipgate-exporter-simulator",
        }
        if parts.username is not None:
            token = basic_auth_token(unquote(parts.username), unquote(parts.password or ""))
            self._headers["Authorization"] = "Basic " + token.decode()
        self._sign_key = sign_key
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        """Send one event; return the status and body of the reply."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request("POST", self._path, body, self._request_headers(body))
                reply = self._connection.getresponse()
                return reply.status, reply.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _request_headers(self, body: bytes) -> dict[str, str]:
        if self._sign_key is None:
            return self._headers
        return {**self._headers, SIGNATURE_HEADER: sign_body(self._sign_key, body)}

    def close(self) -> None:
        """Drop the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
