"""The credentials in the upstream's URLs, kept out of the follow-up URLs a store writes down."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from exporter.relay.reply import FollowUps

Origin = tuple[str, str, int | None]


def _parts(url: str) -> tuple[Origin, str, str]:
    """`url`'s origin, its user info (empty if none) and its address without the user info."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    origin = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)
    return origin, userinfo, urlunsplit(parts._replace(netloc=host))


class Credentials:
    """The user info of `upstreams`' URLs, by their origin (scheme, host, port)."""

    def __init__(self, upstreams: Iterable[str]) -> None:
        self._by_origin: dict[Origin, str] = {}
        for url in upstreams:
            origin, userinfo, _ = _parts(url)
            if userinfo:
                self._by_origin[origin] = userinfo

    def stripped(self, follow_ups: FollowUps) -> FollowUps:
        """`follow_ups` without the user info of an upstream at their origin."""
        return FollowUps(*(self._strip(url) for url in _urls(follow_ups)))

    def restored(self, follow_ups: FollowUps) -> FollowUps:
        """`follow_ups` with the user info of an upstream at their origin, where they have none."""
        return FollowUps(*(self._restore(url) for url in _urls(follow_ups)))

    def _strip(self, url: str | None) -> str | None:
        if url is None:
            return None
        origin, userinfo, bare = _parts(url)
        return bare if userinfo and self._by_origin.get(origin) == userinfo else url

    def _restore(self, url: str | None) -> str | None:
        if url is None:
            return None
        origin, userinfo, _ = _parts(url)
        known = self._by_origin.get(origin)
        if userinfo or known is None:
            return url
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"{known}@{parts.netloc}"))


def _urls(follow_ups: FollowUps) -> tuple[str | None, str | None, str | None]:
    return (follow_ups.on_answer, follow_ups.on_hangup, follow_ups.on_data)
