"""GET /: the status page. Is the exporter receiving, is it safe, and what is it configured with?"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from datetime import tzinfo
from urllib.parse import urlsplit, urlunsplit

import bottle

from exporter.domain.calls import RINGING, TALKING
from exporter.domain.tracker import Reading
from exporter.recorder import Recorder
from exporter.web.requests import INVALID, RequestStats
from exporter.web.status_html import HEADERS, render
from exporter.web.status_today import Today, Totals
from exporter.web.status_view import WARNING, Check, Figures, Setup, StatusSettings, StatusView

NotReady = Callable[[], str | None]


class StatusPage:
    """The status page of one exporter; `webhook_url` gives the URL of the request answered."""

    def __init__(
        self,
        webhook_url: Callable[[], str],
        recorder: Recorder,
        settings: StatusSettings,
        not_ready: NotReady = lambda: None,
        reload_failed: Callable[[], bool] = lambda: False,
        zone: tzinfo | None = None,
    ) -> None:
        self._webhook_url = webhook_url
        self._recorder = recorder
        self._settings = settings
        self._not_ready = not_ready
        self._reload_failed = reload_failed
        self._zone = zone
        self._today = Today(recorder.clock(), self._totals(), zone)

    def get(self) -> bottle.HTTPResponse:
        """The page, without any credentials of the URL: it is public."""
        page = render(self.view(without_credentials(self._webhook_url())), self._zone)
        return bottle.HTTPResponse(page, headers=HEADERS)

    def tick(self) -> None:
        """Begin a new day's counts after local midnight; the sweeper calls this every second."""
        self._today.roll(self._recorder.clock(), self._totals)

    def view(self, webhook_url: str) -> StatusView:
        """Everything the page shows, read now."""
        now = self._recorder.clock()
        reading = self._recorder.tracker.read()
        requests = self._recorder.requests.read()
        totals = _totals(reading, requests)
        today = self._today.counts(now, totals)
        return StatusView(
            webhook_url=webhook_url,
            checks=checks(self._settings, webhook_url, self._not_ready(), self._reload_failed()),
            figures=_figures(now, reading, totals, today, self._today),
            setup=self._setup(reading),
            settings=self._settings,
        )

    def _totals(self) -> Totals:
        return _totals(self._recorder.tracker.read(), self._recorder.requests.read())

    def _setup(self, reading: Reading) -> Setup:
        targets = self._recorder.tracker.targets
        lines = reading.labels.lines
        return Setup(
            lines=lines,
            teams=reading.labels.teams,
            users=len(reading.labels.users) if reading.labels.per_user else None,
            targets=targets.default,
            line_targets=tuple(
                (line, targets(line)) for line in lines if targets(line) != targets.default
            ),
        )


def checks(
    settings: StatusSettings, webhook_url: str, not_ready: str | None, reload_failed: bool
) -> tuple[Check, ...]:
    """Each safety check, passed or not; a failed one says what to do."""
    loopback = is_loopback(settings.listen_host)
    host = settings.listen_host
    found = [
        Check.of(
            "ready",
            not_ready is None,
            "Events are accepted and counted.",
            f"Events are refused: {not_ready}.",
            "Free the disk or fix the state file's directory; /-/ready shows when it recovers.",
        ),
        Check.of(
            "signature",
            settings.verify_signature,
            "Signatures are checked: only sipgate can post events.",
            "The signature check is off (--webhook.verify-signature=false): "
            "anyone who reaches the webhook can post events and change the statistics.",
            "Fine for a try-out with hand-made events; in production drop the flag.",
        ),
        Check.of(
            "sources",
            settings.allow_list or loopback,
            "Webhook requests are accepted only from --webhook.allowed-networks."
            if settings.allow_list
            else f"Listening on the loopback address {host} only.",
            f"Webhook requests are accepted from any address (listening on {host}, "
            "no --webhook.allowed-networks).",
            "Set --webhook.allowed-networks to sipgate's addresses (README: Security).",
            level=WARNING,
        ),
        Check.of(
            "public-url",
            settings.public_url,
            "The webhook URL is configured (--webhook.public-url).",
            "The webhook URL is derived from each request (--webhook.public-url is unset).",
            "sipgate sends answer and hangup only to the URL in the reply to newCall: "
            "set --webhook.public-url=https://YOUR-HOST/webhook.",
            level=WARNING,
        ),
        Check.of(
            "https",
            webhook_url.startswith("https://"),
            "The webhook URL uses HTTPS.",
            "The webhook URL is not HTTPS.",
            "sipgate requires HTTPS for production webhook URLs: put a TLS reverse proxy "
            "or tunnel in front of the exporter.",
            level=WARNING,
        ),
    ]
    if settings.config_file is not None:
        found.append(
            Check.of(
                "config-file",
                not reload_failed,
                "The configuration file is in force.",
                "The last reload of the configuration file failed; the one before stays in force.",
                "The log names the line at fault; fix the file and reload again.",
                level=WARNING,
            )
        )
    return tuple(found)


def is_loopback(host: str) -> bool:
    """Whether a listen host is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def without_credentials(url: str) -> str:
    """The URL without `user:password@`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _totals(reading: Reading, requests: RequestStats) -> Totals:
    """The running totals "today" is counted from, by name."""
    totals: Totals = Counter()
    for (event, status), count in requests.requests.items():
        if status == "500":
            totals["failed"] += count
        elif event != INVALID and status == "200":
            totals["events"] += count
    for (direction, _line), count in reading.stats.calls_started.items():
        totals[f"calls:{direction}"] += count
    for reason, count in requests.rejected.items():
        totals[f"refused:{reason}"] += count
    return totals


def _figures(now: float, reading: Reading, totals: Totals, today: Totals, day: Today) -> Figures:
    states: Totals = Counter()
    for (_direction, state, _line), count in reading.active.items():
        states[state] += count
    return Figures(
        now=now,
        last_received=reading.stats.last_received,
        since=day.since,
        since_start=day.since == day.started,
        today=today,
        totals=totals,
        ringing=states[RINGING],
        talking=states[TALKING],
    )
