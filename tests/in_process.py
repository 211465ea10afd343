"""An exporter's parts wired in one process, as exporter/service.py wires them, for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import bottle
from prometheus_client import CollectorRegistry

from exporter.domain.events import DEFAULT_LIMITS, Limits
from exporter.domain.tracker import CallTracker
from exporter.metrics import create_registry, new_requests, new_statistics
from exporter.recorder import Recorder
from exporter.relay.relay import Relay
from exporter.relay.replies import RelayReplies
from exporter.storage.store import MemoryStore, Store
from exporter.web.app import NotReady, Reload, create_app, create_metrics_app
from exporter.web.guard import Guard
from exporter.web.status import StatusPage
from exporter.web.status_view import StatusSettings
from exporter.web.webhook import Webhook


@dataclass
class InProcess:
    """The parts of one exporter: its tracker, recorder, registry and Bottle apps."""

    tracker: CallTracker
    recorder: Recorder
    registry: CollectorRegistry
    app: bottle.Bottle
    metrics_app: bottle.Bottle


def new_tracker(
    forward_grace: float = 10.0, expire_after: float = 3600.0, max_open: int | None = None
) -> CallTracker:
    """A tracker with the exporter's buckets."""
    return CallTracker(new_statistics(), forward_grace, expire_after, max_open)


def build(
    tracker: CallTracker | None = None,
    *,
    store: Store | None = None,
    guard: Guard | None = None,
    limits: Limits = DEFAULT_LIMITS,
    public_url: str | None = None,
    clock: Callable[[], float] = time.time,
    not_ready: NotReady | None = None,
    relay: Relay | None = None,
    serve_metrics: bool = True,
    reload: Reload | None = None,
    process_metrics: bool = False,
    recorder: Recorder | None = None,
) -> InProcess:
    """Wire an exporter around `tracker` (a new one by default), keeping nothing by default;
    or around `recorder`, with its tracker and store."""
    if recorder is None:
        tracker = tracker or new_tracker()
        recorder = Recorder(tracker, new_requests(), store or MemoryStore(), clock)
    tracker = recorder.tracker
    registry = create_registry(
        tracker,
        recorder.requests,
        relay=relay,
        health=recorder.health,
        process_metrics=process_metrics,
    )
    not_ready = not_ready or recorder.health.problem
    replies = RelayReplies(relay) if relay is not None else None
    webhook = Webhook(recorder, guard, limits, replies, public_url)
    settings = StatusSettings(
        verify_signature=guard is not None and guard.signature_key is not None,
        allow_list=guard is not None and guard.allowed_networks is not None,
        public_url=public_url is not None,
        metrics_address=None if serve_metrics else "127.0.0.1:9851",
    )
    status = StatusPage(webhook.url, recorder, settings, not_ready)
    app = create_app(webhook, registry if serve_metrics else None, not_ready, reload, status=status)
    metrics_app = create_metrics_app(registry, not_ready, status)
    return InProcess(tracker, recorder, registry, app, metrics_app)
