"""The upstream's XML reply to newCall or dtmf: checked, and re-subscribed to the exporter."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from exporter.domain.events import Answer, Dtmf, Event, Hangup
from exporter.errors import InvalidReplyError

ON_ANSWER: Final = "onAnswer"
ON_HANGUP: Final = "onHangup"
ON_DATA: Final = "onData"
MAX_URL_CHARS: Final = 2048
XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True, slots=True)
class FollowUps:
    """The URLs an upstream asked sipgate to send a call's follow-up events to."""

    on_answer: str | None = None
    on_hangup: str | None = None
    on_data: str | None = None

    def url_for(self, event: Event) -> str | None:
        """Where `event` goes, or None when the upstream did not ask for it."""
        if isinstance(event, Answer):
            return self.on_answer
        if isinstance(event, Hangup):
            return self.on_hangup
        if isinstance(event, Dtmf):
            return self.on_data
        return None

    def __bool__(self) -> bool:
        return bool(self.on_answer or self.on_hangup or self.on_data)


class _Rejecting(ET.TreeBuilder):
    """A tree builder that refuses any DOCTYPE, and with it every entity declaration."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise InvalidReplyError("reply has a DOCTYPE")


def parse_reply(body: bytes) -> ET.Element:
    """The <Response> element of an upstream's XML reply; raise InvalidReplyError otherwise."""
    # DOCTYPE is refused before expat reads any entity declaration: no entity expansion, no
    # external resources. defusedxml would do the same with one more dependency.
    parser = ET.XMLParser(target=_Rejecting())  # noqa: S314
    try:
        parser.feed(body)
        root = parser.close()
    except ET.ParseError as error:
        raise InvalidReplyError(f"reply is not well-formed XML ({error})") from None
    if not isinstance(root, ET.Element) or root.tag != "Response":
        raise InvalidReplyError("reply's root element is not <Response>")
    return root


def rewrite_reply(body: bytes, own_url: str, base_url: str = "") -> tuple[bytes, FollowUps]:
    """The reply for sipgate, subscribed to `own_url`, and the follow-ups the upstream wanted.

    Every element, attribute and text stays as it was, except `onAnswer` and `onHangup` of
    <Response> (always set to `own_url`) and `onData` of any <Gather> that has one. Relative
    URLs of the upstream are resolved against `base_url`.
    """
    root = parse_reply(body)
    on_data = None
    for gather in root.iter("Gather"):
        if ON_DATA in gather.attrib:
            on_data = on_data or _follow_up_url(gather.attrib[ON_DATA], base_url)
            gather.set(ON_DATA, own_url)
    follow_ups = FollowUps(
        on_answer=_follow_up_url(root.get(ON_ANSWER), base_url),
        on_hangup=_follow_up_url(root.get(ON_HANGUP), base_url),
        on_data=on_data,
    )
    root.set(ON_ANSWER, own_url)
    root.set(ON_HANGUP, own_url)
    text = XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"
    return text.encode(), follow_ups


def _follow_up_url(value: str | None, base_url: str) -> str | None:
    if not value or not value.strip():
        return None
    url = urljoin(base_url, value.strip())
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidReplyError("reply names a follow-up URL that is not absolute http(s)")
    return url
