"""The running exporter: its parts built from a Config, wired together and served until stopped."""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from exporter.call_log import log_calls_ended
from exporter.clock import SteadyClock
from exporter.config.flags import Config
from exporter.config.reload import ConfigReloader
from exporter.domain.callbacks import Callbacks
from exporter.domain.events import Limits
from exporter.domain.service_level import ServiceTargets
from exporter.domain.tracker import CallTracker
from exporter.errors import ConfigFileError, ExporterError, StateError
from exporter.metrics import create_registry, new_relay_stats, new_requests, new_statistics
from exporter.recorder import Recorder
from exporter.relay.credentials import Credentials
from exporter.relay.relay import Relay, RelaySettings
from exporter.relay.replies import RelayReplies
from exporter.relay.upstream import Post, post
from exporter.storage.sqlite import SqliteStore
from exporter.storage.store import MemoryStore, Store
from exporter.web.app import create_app, create_metrics_app
from exporter.web.connections import ConnectionLimits, DroppedConnections, fit_connection_limit
from exporter.web.guard import Guard, basic_auth_token, sipgate_public_key
from exporter.web.requests import WebhookRequests
from exporter.web.server import Server, ServerGroup, Sweeper, stop_on_signals
from exporter.web.status import StatusPage
from exporter.web.status_view import StatusSettings
from exporter.web.webhook import Webhook

if TYPE_CHECKING:
    from exporter.storage.postgres.store import PostgresStore

log = logging.getLogger(__name__)

# A clock this far behind the saved state is worth a warning; less is ordinary NTP slewing.
CLOCK_TOLERANCE: Final = 1.0


def build_guard(config: Config) -> Guard:
    """The webhook checks the configuration asks for, prepared once."""
    key = (config.signature_key or sipgate_public_key()) if config.verify_signature else None
    token = None
    if config.basic_auth_user is not None and config.basic_auth_password is not None:
        token = basic_auth_token(config.basic_auth_user, config.basic_auth_password)
    return Guard(config.max_body_bytes, key, token, config.allowed_networks, config.trusted_proxies)


def build_tracker(config: Config, shared: PostgresStore | None = None) -> CallTracker:
    """The call tracker with the configured times, limits and targets; its calls in the
    `shared` store's database if given."""
    targets = ServiceTargets(config.service_level_target, config.short_abandon)
    if shared is not None:
        from exporter.storage.postgres.tracker import SharedTracker

        callbacks = Callbacks(
            config.callbacks_expire_after, config.callbacks_max_pending, shared.callback_key
        )
        return SharedTracker(
            shared,
            new_statistics(),
            config.forward_grace,
            config.expire_after,
            config.max_open_calls,
            targets=targets,
            callbacks=callbacks,
            numbers=config.call_records_numbers,
        )
    return CallTracker(
        new_statistics(),
        config.forward_grace,
        config.expire_after,
        config.max_open_calls,
        targets=targets,
        callbacks=Callbacks(config.callbacks_expire_after, config.callbacks_max_pending),
    )


def open_shared(config: Config) -> PostgresStore | None:
    """The state database of `--state.url`, migrated and claimed; None without one."""
    if config.state_url is None:
        return None
    # Imported here: psycopg is loaded only by exporters that use PostgreSQL.
    from exporter.storage.postgres.store import PostgresStore

    store = PostgresStore(
        config.state_url,
        config.state_replica,
        config.threads,
        new_statistics(),
        config.call_records_retention,
    )
    log.info("state in the database %s, as replica %s", store.where, config.state_replica)
    return store


def build_relay(
    config: Config, shared: PostgresStore | None = None, send: Post = post
) -> Relay | None:
    """The relay to the upstream application, sending with `send`, or None when relay mode
    is off; with `shared`, the follow-up URLs are kept in the state database."""
    upstreams = {
        direction: url
        for direction, url in (
            ("in", config.relay_upstream_url_in or config.relay_upstream_url),
            ("out", config.relay_upstream_url_out or config.relay_upstream_url),
        )
        if url is not None
    }
    if not upstreams:
        return None
    settings = RelaySettings(
        upstreams,
        timeout=config.relay_timeout,
        retries=config.relay_retries,
        max_calls=config.max_open_calls,
        expire_after=config.expire_after,
    )
    if shared is None:
        return Relay(settings, new_relay_stats(), send=send)
    from exporter.storage.postgres.follow_ups import SharedFollowUps  # as in open_shared

    credentials = Credentials(upstreams.values())
    follow_ups = SharedFollowUps(shared, settings.max_calls, settings.expire_after, credentials)
    return Relay(settings, new_relay_stats(), send=send, follow_ups=follow_ups)


def open_store(config: Config) -> Store:
    """The store of `--state.path`, or one that keeps nothing; raise StateError."""
    if config.state_path is None:
        log.warning("--state.path is empty: statistics start from zero at every restart")
        return MemoryStore()
    return SqliteStore(
        config.state_path,
        config.state_sync,
        config.state_reset,
        config.snapshot_interval,
        unsigned=not config.verify_signature,
        keep_unsigned=config.state_keep_unsigned,
    )


def _state_database(config: Config) -> str | None:
    if config.state_url is None:
        return None
    from exporter.storage.postgres.connect import where

    return f"{where(config.state_url)}, as replica {config.state_replica}"


def build_connection_limits(config: Config, servers: int) -> ConnectionLimits:
    """The flags' connection limits for each of `servers` servers, without an allow-list."""
    return ConnectionLimits(
        max_connections=fit_connection_limit(config.max_connections, servers),
        max_per_client=config.max_connections_per_client,
        request_timeout=config.request_timeout,
        proxies=config.trusted_proxies,
        # sipgate pushes every event from two addresses: those are never capped per address.
        uncapped=config.trusted_proxies + (config.allowed_networks or ()),
    )


def status_settings(config: Config) -> StatusSettings:
    """What the status page says about the flags."""
    metrics = config.metrics_address
    return StatusSettings(
        verify_signature=config.verify_signature,
        allow_list=config.allowed_networks is not None,
        listen_host=config.listen_host,
        public_url=config.public_url is not None,
        state_path=None if config.state_path is None else str(config.state_path),
        state_database=_state_database(config),
        metrics_address=None if metrics is None else _host_port(*metrics),
        grafana_url=config.grafana_url,
        config_file=None if config.config_file is None else str(config.config_file),
    )


def build_server(
    config: Config,
    recorder: Recorder,
    relay: Relay | None = None,
    reloader: ConfigReloader | None = None,
) -> tuple[ServerGroup, Sweeper]:
    """The HTTP servers (webhook, and metrics if separate) and the background sweeper."""
    dropped = DroppedConnections()
    registry = create_registry(
        recorder.tracker,
        recorder.requests,
        relay=relay,
        reloader=reloader,
        health=recorder.health,
        connections=dropped,
        # Shared calls keep the database's time, which is the wall clock's.
        clock_error=None if config.state_url else lambda: time.time() - recorder.clock(),
    )
    separate = config.metrics_address is not None
    webhook = Webhook(
        recorder,
        build_guard(config),
        Limits(config.max_fields, config.max_users),
        RelayReplies(relay) if relay is not None else None,
        config.public_url,
    )
    reload = _reload_endpoint(reloader) if config.enable_lifecycle else None
    not_ready = recorder.health.problem
    status = StatusPage(
        webhook.url,
        recorder,
        status_settings(config),
        not_ready,
        reload_failed=lambda: reloader is not None and not reloader.status().last_successful,
    )
    app = create_app(
        webhook, None if separate else registry, not_ready, reload=reload, status=status
    )
    limits: dict[str, Any] = {
        "max_body_bytes": config.max_body_bytes,
        "read_timeout": config.read_timeout,
        "dropped": dropped,
    }
    connections = build_connection_limits(config, 2 if separate else 1)
    # The allow-list drops peers at accept only where no /metrics is served to Prometheus.
    accept = replace(connections, allowed_networks=config.allowed_networks)
    main = limits | {"limits": accept if separate else connections}
    serves = "the webhook" if separate else "the webhook and /metrics"
    servers = [_listen(app, config.listen_host, config.listen_port, config.threads, serves, main)]
    if config.metrics_address is not None:
        host, port = config.metrics_address
        metrics_app = create_metrics_app(registry, not_ready, status)
        servers.append(
            _listen(metrics_app, host, port, 2, "/metrics", limits | {"limits": connections})
        )

    def sweep() -> None:
        log_calls_ended(recorder.sweep(recorder.clock()))
        recorder.maintain()
        if relay is not None:
            relay.sweep()
        if reloader is not None:
            reloader.reload_if_requested()
        status.tick()

    return ServerGroup(servers), Sweeper(sweep)


class ListenError(ExporterError):
    """A server cannot listen on its address; the message says why and what to do."""

    def __init__(self, address: str, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"cannot listen on {address}: {reason}{_listen_hint(error)}")


def serve(config: Config) -> int:
    """Build the exporter, restore its state, serve until SIGTERM or SIGINT; the exit status."""
    try:
        shared = open_shared(config)
    except StateError as error:
        log.error("%s", error)
        return 1
    tracker = build_tracker(config, shared)
    try:
        # Before the state is replayed, so that replayed calls get their lines.
        reloader = _open_config_file(config, tracker)
    except ConfigFileError as error:
        log.error("%s", error)
        if shared is not None:
            shared.close()
        return 2
    try:
        recorder = open_recorder(config, tracker, shared)
    except StateError as error:
        log.error("%s", error)
        return 1
    relay = build_relay(config, shared)
    try:
        server, sweeper = build_server(config, recorder, relay, reloader)
    except ListenError as error:
        log.error("%s", error)
        _close(recorder)
        return 1
    stop_on_signals(server.stop_soon)
    # What start-up built lives as long as the process: left to the collector, each full
    # collection walks it all, a pause of 15-20 ms (bench/RESULTS.md, "Replicas on PostgreSQL").
    gc.freeze()
    sweeper.start()
    if relay is not None:
        log.info("relay mode: events are passed on to %s", _relay_hosts(relay))
        relay.start()
    try:
        server.run()
    finally:
        sweeper.stop()
        sweeper.join()  # a sweep in progress must not meet a closed store
        if relay is not None:
            relay.stop()
        closed = _close(recorder)
    if not closed:
        return 1
    log.info("stopped")
    return 0


def _close(recorder: Recorder) -> bool:
    """Keep the final state and release the store; False, logged, if the state is not kept."""
    try:
        recorder.close()
    except StateError as error:
        log.error("%s", error)
        return False
    return True


def open_recorder(
    config: Config, tracker: CallTracker, shared: PostgresStore | None = None
) -> Recorder:
    """The recorder of `tracker`: its store opened (`shared` if given) and its state restored;
    raise StateError if the state cannot be used."""
    started = time.monotonic()
    store: Store = shared if shared is not None else open_store(config)
    clock = SteadyClock()
    recorder = Recorder(tracker, _requests(shared), store, clock)
    try:
        replayed = recorder.restore()
    except BaseException:
        store.close()
        raise
    if isinstance(store, SqliteStore) and store.created and not replayed:
        log.info("state %s is new: statistics start from zero", config.state_path)
    elif config.state_path is not None:
        log.info(
            "state %s restored: %d calls counted so far, %d in progress; "
            "%d journal records replayed in %.2fs",
            config.state_path,
            sum(tracker.stats.calls_started.values()),
            tracker.open_calls,
            replayed,
            time.monotonic() - started,
        )
        _check_clock(clock, recorder, config.expire_after)
    elif shared is not None:
        log.info(
            "replica %s restored: %d calls counted so far by this replica",
            config.state_replica,
            sum(tracker.stats.calls_started.values()),
        )
    return recorder


def _requests(shared: PostgresStore | None) -> WebhookRequests:
    requests = new_requests()
    if shared is None:
        return requests
    from exporter.storage.postgres.requests import SharedRequests

    return SharedRequests(shared, requests.buckets)


def _check_clock(clock: SteadyClock, recorder: Recorder, expire_after: float) -> None:
    """Say when the wall clock moved far since the state was saved, and never count backwards."""
    behind = clock.catch_up(recorder.restored_until)
    if behind > CLOCK_TOLERANCE:
        log.warning(
            "the clock is %.0fs behind the last saved event: counting on from that event's time",
            behind,
        )
    elif recorder.restored_until and recorder.tracker.open_calls:
        away = clock() - recorder.restored_until
        if away > expire_after:
            log.warning(
                "the last saved event is %.0fs old, more than --calls.expire-after: "
                "the calls still open then end as expired now",
                away,
            )


def _open_config_file(config: Config, tracker: CallTracker) -> ConfigReloader | None:
    """Apply --config.file and reload it on SIGHUP; raise ConfigFileError."""
    if config.config_file is None:
        return None
    reloader = ConfigReloader(config.config_file, tracker.configure_labels)
    reloader.load()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        reloader.requested = True  # the sweeper reloads within a second

    signal.signal(signal.SIGHUP, on_hangup)
    return reloader


def _reload_endpoint(reloader: ConfigReloader | None) -> Callable[[], tuple[bool, str]]:
    def reload() -> tuple[bool, str]:
        if reloader is None:
            return False, "no --config.file to reload"
        return reloader.reload()

    return reload


def _listen(
    app: Any, host: str, port: int, threads: int, serves: str, limits: dict[str, Any]
) -> Server:
    try:
        return Server(app, host, port, threads, serves=serves, **limits)
    except OSError as error:
        raise ListenError(f"{host}:{port}", error) from error


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _relay_hosts(relay: Relay) -> str:
    # Host names only: an upstream URL may carry credentials.
    hosts = {d: urlsplit(url).hostname for d, url in relay.settings.upstreams.items()}
    return ", ".join(f"{host} ({direction})" for direction, host in sorted(hosts.items()))


def _listen_hint(error: OSError) -> str:
    if error.errno == 98:  # EADDRINUSE
        return " (another program uses this port: stop it or pick another address)"
    if error.errno == 13:  # EACCES
        return " (ports below 1024 need privileges: use a higher port behind a reverse proxy)"
    return ""
