"""GET /: the page that shows the webhook URL to paste into the sipgate console."""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import bottle

from exporter import __version__


class LandingPage:
    """The landing page; `webhook_url` gives the URL of the request being answered."""

    def __init__(self, webhook_url: Callable[[], str], links_metrics: bool = True) -> None:
        self._webhook_url = webhook_url
        self._links_metrics = links_metrics

    def get(self) -> bottle.HTTPResponse:
        """The page, without any credentials of the URL: it is public."""
        page = render(without_credentials(self._webhook_url()), self._links_metrics)
        return bottle.HTTPResponse(page, headers={"Content-Type": "text/html; charset=utf-8"})


def without_credentials(url: str) -> str:
    """The URL without `user:password@`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def render(webhook_url: str, links_metrics: bool = True) -> str:
    """The page's HTML."""
    url = html.escape(webhook_url)
    metrics_link = (
        '<li><a href="metrics">Metrics</a> (scrape this with Prometheus)</li>'
        if links_metrics
        else "<li>Metrics are served on a separate address.</li>"
    )
    https_note = (
        ""
        if webhook_url.startswith("https://")
        else "<p><strong>Note:</strong> sipgate requires HTTPS for production webhook URLs; "
        "put a TLS reverse proxy or tunnel in front and set <code>--webhook.public-url</code>.</p>"
    )
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>sipgate.io exporter</title></head>
<body>
<h1>sipgate.io call statistics exporter</h1>
<p>Version {html.escape(__version__)}. It receives sipgate.io push events and exposes call
statistics for Prometheus.</p>
<p>In the sipgate console, under Webhooks &rarr; URLs, enter this URL for incoming and
outgoing calls:</p>
<pre>{url}</pre>
{https_note}
<ul>
{metrics_link}
<li><a href="-/healthy">Health</a> and <a href="-/ready">readiness</a></li>
</ul>
</body>
</html>
"""
