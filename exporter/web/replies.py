"""What the webhook answers sipgate: subscriptions to follow-up events, or nothing to do."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol
from xml.sax.saxutils import quoteattr

from exporter.domain.events import Event, NewCall

XML_CONTENT_TYPE: Final = "application/xml; charset=utf-8"
EMPTY_REPLY: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n<Response/>\n'


def subscribe_reply(webhook_url: str) -> bytes:
    """The reply to newCall that asks sipgate to send answer and hangup to `webhook_url`."""
    url = quoteattr(webhook_url)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response onAnswer={url} onHangup={url}/>\n'
    ).encode()


# The webhook URL that follow-up events go to; asked for only by replies that name it.
WebhookUrl = Callable[[], str]


class Replies(Protocol):
    """Chooses the XML reply to an event that was counted."""

    def reply(
        self, event: Event, environ: Mapping[str, Any], body: bytes, webhook_url: WebhookUrl
    ) -> bytes:
        """The reply body for sipgate; `environ` and `body` are the request's."""


class OwnReplies:
    """The exporter's own replies: newCall subscribes to answer and hangup, the rest is empty."""

    def reply(
        self, event: Event, environ: Mapping[str, Any], body: bytes, webhook_url: WebhookUrl
    ) -> bytes:
        """Subscribe to a new call's follow-up events; acknowledge anything else."""
        return subscribe_reply(webhook_url()) if isinstance(event, NewCall) else EMPTY_REPLY
