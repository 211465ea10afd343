"""The Bottle apps: the main one (webhook, landing page, health, metrics) and the metrics one."""

from __future__ import annotations

from collections.abc import Callable

import bottle
from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter.web.landing import LandingPage
from exporter.web.webhook import TEXT_CONTENT_TYPE, WEBHOOK_PATH, Webhook, text_response

Reload = Callable[[], tuple[bool, str]]


class Health:
    """/-/healthy and /-/ready; `ready` says whether requests can be served."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self._ready = ready

    def healthy(self) -> bottle.HTTPResponse:
        """The process answers."""
        return text_response(200, "Healthy\n")

    def ready(self) -> bottle.HTTPResponse:
        """200 when ready, 503 before."""
        return text_response(200, "Ready\n") if self._ready() else text_response(503, "Not ready\n")


class Lifecycle:
    """POST /-/reload: reload the configuration file, when the lifecycle API is on."""

    def __init__(self, reload: Reload | None) -> None:
        self._reload = reload

    def reload(self) -> bottle.HTTPResponse:
        """Reload and say how it went."""
        if self._reload is None:
            return text_response(403, "lifecycle API is off; start with --web.enable-lifecycle\n")
        reloaded, message = self._reload()
        return text_response(200 if reloaded else 500, f"{message}\n")


def create_app(
    webhook: Webhook,
    registry: CollectorRegistry | None,
    ready: Callable[[], bool] = lambda: True,
    reload: Reload | None = None,
) -> bottle.Bottle:
    """The main app; without a `registry`, /metrics is left to `create_metrics_app`."""
    app = _base_app(registry, ready)
    landing = LandingPage(webhook.url, links_metrics=registry is not None)
    app.route(WEBHOOK_PATH, "POST", webhook.post)
    app.route(WEBHOOK_PATH, "GET", webhook.get)
    app.route("/", "GET", landing.get)
    app.route("/-/reload", "POST", Lifecycle(reload).reload)
    return app


def create_metrics_app(
    registry: CollectorRegistry, ready: Callable[[], bool] = lambda: True
) -> bottle.Bottle:
    """The app of the separate metrics address: /metrics, health and readiness only."""
    return _base_app(registry, ready)


def _base_app(registry: CollectorRegistry | None, ready: Callable[[], bool]) -> bottle.Bottle:
    app = bottle.Bottle()
    # Every route returns bytes or text: the JSON plugin would only wrap each call.
    app.uninstall("json")
    health = Health(ready)
    app.route("/-/healthy", "GET", health.healthy)
    app.route("/-/ready", "GET", health.ready)
    if registry is not None:
        app.mount("/metrics", make_wsgi_app(registry), method="GET")
    app.error(404)(_plain_error)
    app.error(405)(_plain_error)
    return app


def _plain_error(error: bottle.HTTPError) -> str:
    bottle.response.content_type = TEXT_CONTENT_TYPE
    return f"{error.status_line}\n"
