"""The stack's own ceiling: a bare Bottle app on waitress that does the least a webhook must.

It reads the form body, parses it with `parse_qsl`, increments one counter and answers newCall
with the same XML. With `--signature-key` it first checks sipgate's signature header as the
exporter does (RSA PKCS#1 v1.5 with SHA-256), the ceiling of any webhook that checks it. Run as
`python -m bench.baseline --port N --threads 4 [--signature-key PEM]`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl

import bottle
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from prometheus_client import CollectorRegistry, Counter, generate_latest
from waitress import create_server

XML_CONTENT_TYPE = "application/xml; charset=utf-8"
EMPTY_REPLY = b'<?xml version="1.0" encoding="UTF-8"?>\n<Response/>\n'


def subscribe_reply(url: str) -> bytes:
    """The exporter's reply to newCall, built once here."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response onAnswer="{url}" onHangup="{url}"/>\n'
    ).encode()


def create_app(webhook_url: str, signature_key: RSAPublicKey | None = None) -> bottle.Bottle:
    """The baseline app: POST /webhook, GET /metrics and GET /-/ready."""
    app = bottle.Bottle()
    registry = CollectorRegistry(auto_describe=True)
    events = Counter("baseline_events", "Webhook events received.", registry=registry)
    new_call_reply = subscribe_reply(webhook_url)

    def webhook() -> bottle.HTTPResponse:
        raw = bottle.request.body.read()
        if signature_key is not None:
            signature = bottle.request.environ.get("HTTP_X_SIPGATE_SIGNATURE", "")
            try:
                signature_key.verify(base64.b64decode(signature), raw, PKCS1v15(), SHA256())
            except (InvalidSignature, binascii.Error):
                return bottle.HTTPResponse("bad signature\n", status=403)
        fields = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        events.inc()
        body = new_call_reply if fields.get("event") == "newCall" else EMPTY_REPLY
        return bottle.HTTPResponse(body, headers={"Content-Type": XML_CONTENT_TYPE})

    def metrics() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(
            generate_latest(registry), headers={"Content-Type": "text/plain"}
        )

    def ready() -> str:
        return "Ready\n"

    app.route("/webhook", "POST", webhook)
    app.route("/metrics", "GET", metrics)
    app.route("/-/ready", "GET", ready)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the baseline on 127.0.0.1 until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--signature-key", help="PEM public key: check X-Sipgate-Signature")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    url = f"http://127.0.0.1:{args.port}/webhook"
    key = None
    if args.signature_key:
        with open(args.signature_key, "rb") as pem:
            loaded = load_pem_public_key(pem.read())
        if not isinstance(loaded, RSAPublicKey):
            raise SystemExit(f"{args.signature_key}: not an RSA public key")
        key = loaded
    server = create_server(
        create_app(url, key), host="127.0.0.1", port=args.port, threads=args.threads
    )
    server.run()


if __name__ == "__main__":
    main()
