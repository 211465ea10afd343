"""The webhook's replies in relay mode: the upstream's, with the exporter's own as fallback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.domain.events import Dtmf, Event, NewCall
from exporter.relay.relay import Relay
from exporter.relay.upstream import Incoming
from exporter.web.replies import OwnReplies, Replies, WebhookUrl


class RelayReplies:
    """Asks the upstream for replies to newCall and dtmf and passes the other events on."""

    def __init__(self, relay: Relay, fallback: Replies | None = None) -> None:
        self._relay = relay
        self._fallback = fallback or OwnReplies()

    def reply(
        self, event: Event, environ: Mapping[str, Any], body: bytes, webhook_url: WebhookUrl
    ) -> bytes:
        """The upstream's reply where sipgate acts on it, else the fallback's."""
        incoming = Incoming.from_environ(environ, body)
        own = self._fallback.reply(event, environ, body, webhook_url)
        if isinstance(event, NewCall):
            return self._relay.new_call(event, incoming, webhook_url()) or own
        if isinstance(event, Dtmf):
            return self._relay.dtmf(event, incoming, webhook_url()) or own
        self._relay.follow_up(event, incoming)
        return own
