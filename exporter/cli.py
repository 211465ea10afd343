"""The `sipgate-exporter` command: parse the configuration and wire the parts together."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from exporter import __version__
from exporter.config.file import load_label_config
from exporter.config.flags import (
    Config,
    parse_config,
)
from exporter.config.reload import ConfigReloader
from exporter.domain.events import Limits
from exporter.domain.tracker import CallTracker
from exporter.errors import ConfigError, ConfigFileError, StateError
from exporter.gc_pause import settle_after_start
from exporter.logs import setup_logging
from exporter.metrics import create_registry, new_relay_stats, new_statistics
from exporter.relay.relay import Relay, RelaySettings
from exporter.simulate import command as simulate
from exporter.storage.snapshots import Snapshotter, open_durable
from exporter.web.app import create_app, create_metrics_app, log_call_ended
from exporter.web.guard import Guard, basic_auth_token, sipgate_public_key
from exporter.web.server import Server, ServerGroup, Sweeper, stop_on_signals

log = logging.getLogger(__name__)


def build_guard(config: Config) -> Guard:
    """The webhook checks the configuration asks for, prepared once."""
    key = (config.signature_key or sipgate_public_key()) if config.verify_signature else None
    token = None
    if config.basic_auth_user is not None and config.basic_auth_password is not None:
        token = basic_auth_token(config.basic_auth_user, config.basic_auth_password)
    return Guard(config.max_body_bytes, key, token, config.allowed_networks, config.trusted_proxies)


def build_relay(config: Config) -> Relay | None:
    """The relay to the upstream application, or None when relay mode is off."""
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
    return Relay(settings, new_relay_stats())


def build_server(
    config: Config,
    tracker: CallTracker,
    snapshotter: Snapshotter | None = None,
    relay: Relay | None = None,
    reloader: ConfigReloader | None = None,
) -> tuple[ServerGroup, Sweeper]:
    """The HTTP servers (webhook, and metrics if separate) and the background sweeper."""
    registry = create_registry(tracker, relay=relay)
    if reloader is not None:
        registry.register(reloader)
    separate = config.metrics_address is not None
    app = create_app(
        tracker,
        registry,
        config.public_url,
        guard=build_guard(config),
        limits=Limits(config.max_fields, config.max_users),
        serve_metrics=not separate,
        relay=relay,
        reload=_reload_endpoint(reloader) if config.enable_lifecycle else None,
    )
    limits: dict[str, Any] = {
        "max_body_bytes": config.max_body_bytes,
        "read_timeout": config.read_timeout,
    }
    servers = [
        _listen(
            app,
            config.listen_host,
            config.listen_port,
            config.threads,
            serves="the webhook" if separate else "the webhook and /metrics",
            **limits,
        )
    ]
    if config.metrics_address is not None:
        host, port = config.metrics_address
        metrics_app = create_metrics_app(registry)
        servers.append(_listen(metrics_app, host, port, 2, serves="/metrics", **limits))

    def sweep() -> None:
        for call in tracker.sweep(time.time()):
            log_call_ended(call)
        if snapshotter is not None:
            snapshotter.maybe_snapshot()
        if relay is not None:
            relay.sweep()
        if reloader is not None:
            reloader.reload_if_requested()

    return ServerGroup(servers), Sweeper(sweep)


def _reload_endpoint(reloader: ConfigReloader | None) -> Callable[[], tuple[bool, str]]:
    def reload() -> tuple[bool, str]:
        if reloader is None:
            return False, "no --config.file to reload"
        return reloader.reload()

    return reload


def _open_config_file(config: Config, tracker: CallTracker) -> ConfigReloader | None:
    """Apply --config.file and reload it on SIGHUP; raise ConfigFileError."""
    if config.config_file is None:
        return None
    reloader = ConfigReloader(config.config_file, tracker)
    reloader.load()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        reloader.requested = True  # the sweeper reloads within a second

    signal.signal(signal.SIGHUP, on_hangup)
    return reloader


def _check_config(config: Config) -> int:
    if config.config_file is not None:
        try:
            load_label_config(config.config_file)
        except ConfigFileError as error:
            print(f"sipgate-exporter: error: {error}", file=sys.stderr)
            return 1
    shown = f" ({config.config_file})" if config.config_file else ""
    print(f"configuration OK{shown}")
    return 0


def _listen(app: Any, host: str, port: int, threads: int, **options: Any) -> Server:
    try:
        return Server(app, host, port, threads, **options)
    except OSError as error:
        # The address rides along in `filename`, for the message in main().
        raise OSError(error.errno, error.strerror or str(error), f"{host}:{port}") from error


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the exporter until SIGTERM or SIGINT; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["simulate"]:
        return simulate.main(args[1:])
    try:
        config = parse_config(args, os.environ if environ is None else environ)
    except ConfigError as error:
        print(f"sipgate-exporter: error: {error}", file=sys.stderr)
        return 2
    if config.check_config:
        return _check_config(config)
    setup_logging(config.log_level, config.log_format)
    log.info("starting sipgate-exporter %s", __version__)
    _warn_about_security(config)
    tracker = CallTracker(
        new_statistics(), config.forward_grace, config.expire_after, config.max_open_calls
    )
    try:
        # Before the state is replayed, so that replayed calls get their lines.
        reloader = _open_config_file(config, tracker)
    except ConfigFileError as error:
        log.error("%s", error)
        return 2
    store = snapshotter = None
    if config.state_path is not None:
        try:
            store = open_durable(tracker, config.state_path, config.state_sync, config.state_reset)
        except StateError as error:
            log.error("%s", error)
            return 1
        snapshotter = Snapshotter(tracker, store, config.snapshot_interval)
    else:
        log.warning("--state.path is empty: statistics start from zero at every restart")
    relay = build_relay(config)
    try:
        server, sweeper = build_server(config, tracker, snapshotter, relay, reloader)
    except OSError as error:
        log.error(
            "cannot listen on %s: %s%s",
            error.filename or f"{config.listen_host}:{config.listen_port}",
            error.strerror or error,
            _listen_hint(error),
        )
        return 1
    stop_on_signals(server.stop_soon)
    settle_after_start()
    sweeper.start()
    if relay is not None:
        log.info("relay mode: events are passed on to %s", _relay_hosts(relay))
        relay.start()
    try:
        server.run()
    finally:
        sweeper.stop()
        if relay is not None:
            relay.stop()
        if store is not None and snapshotter is not None:
            snapshotter.snapshot(force=True)
            store.close()
    log.info("stopped")
    return 0


def _warn_about_security(config: Config) -> None:
    # Says what is missing, never the URL or the credentials themselves.
    if not config.verify_signature:
        log.warning("webhook signature check is off: anyone reaching /webhook can add events")
    if config.basic_auth_user is not None:
        credentials_in_url = config.public_url and urlsplit(config.public_url).password
        if not credentials_in_url:
            log.warning(
                "basic auth is on but --webhook.public-url carries no credentials: sipgate "
                "sends answer and hangup to that URL, and they would be refused"
            )


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
