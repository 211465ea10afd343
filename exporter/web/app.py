"""The Bottle apps: the main one (webhook, status page, health, metrics) and the metrics one."""

from __future__ import annotations

from collections.abc import Callable

import bottle
from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter.web.status import StatusPage
from exporter.web.webhook import TEXT_CONTENT_TYPE, WEBHOOK_PATH, Webhook, text_response

Reload = Callable[[], tuple[bool, str]]
# Why events cannot be served now, or None when they can.
NotReady = Callable[[], str | None]


class Health:
    """/-/healthy and /-/ready; `not_ready` says why events cannot be served, if they cannot."""

    def __init__(self, not_ready: NotReady) -> None:
        self._not_ready = not_ready

    def healthy(self) -> bottle.HTTPResponse:
        """The process answers."""
        return text_response(200, "Healthy\n")

    def ready(self) -> bottle.HTTPResponse:
        """200 when ready, 503 with the reason otherwise."""
        reason = self._not_ready()
        if reason is None:
            return text_response(200, "Ready\n")
        return text_response(503, f"Not ready: {reason}\n")


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
    not_ready: NotReady = lambda: None,
    reload: Reload | None = None,
    *,
    status: StatusPage,
) -> bottle.Bottle:
    """The main app; without a `registry`, /metrics is left to `create_metrics_app`."""
    app = _base_app(registry, not_ready)
    app.route(WEBHOOK_PATH, "POST", webhook.post)
    app.route(WEBHOOK_PATH, "GET", webhook.get)
    app.route("/", "GET", status.get)
    app.route("/-/reload", "POST", Lifecycle(reload).reload)
    return app


def create_metrics_app(
    registry: CollectorRegistry,
    not_ready: NotReady = lambda: None,
    status: StatusPage | None = None,
) -> bottle.Bottle:
    """The app of the separate, internal metrics address: /metrics, health, readiness and the
    status page, which the main address may not show to an operator behind its allow-list."""
    app = _base_app(registry, not_ready)
    if status is not None:
        app.route("/", "GET", status.get)
    return app


def _base_app(registry: CollectorRegistry | None, not_ready: NotReady) -> bottle.Bottle:
    app = bottle.Bottle()
    # Every route returns bytes or text: the JSON plugin would only wrap each call.
    app.uninstall("json")
    health = Health(not_ready)
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
