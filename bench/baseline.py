"""The stack's own ceiling: a bare Bottle app on waitress that does the least a webhook must.

It reads the form body, parses it with `parse_qsl` as the exporter does, increments one counter
and answers newCall with the same XML. Run as `python -m bench.baseline --port N --threads 4`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl

import bottle
from prometheus_client import CollectorRegistry, Counter, generate_latest
from waitress import create_server

XML_CONTENT_TYPE = "application/xml; charset=utf-8"
EMPTY_REPLY = b'<?xml version="1.0" encoding="UTF-8"?>\n<Response/>\n'


def subscribe_reply(url: str) -> bytes:
    """The exporter's reply to newCall, built once here."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response onAnswer="{url}" onHangup="{url}"/>\n'
    ).encode()


def create_app(webhook_url: str) -> bottle.Bottle:
    """The baseline app: POST /webhook, GET /metrics and GET /-/ready."""
    app = bottle.Bottle()
    registry = CollectorRegistry(auto_describe=True)
    events = Counter("baseline_events", "Webhook events received.", registry=registry)
    new_call_reply = subscribe_reply(webhook_url)

    def webhook() -> bottle.HTTPResponse:
        fields = dict(parse_qsl(bottle.request.body.read().decode(), keep_blank_values=True))
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    url = f"http://127.0.0.1:{args.port}/webhook"
    server = create_server(create_app(url), host="127.0.0.1", port=args.port, threads=args.threads)
    server.run()


if __name__ == "__main__":
    main()
