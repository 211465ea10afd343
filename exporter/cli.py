"""The `sipgate-exporter` command: parse the configuration and wire the parts together."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence

from exporter import __version__, simulate
from exporter.calls import CallTracker
from exporter.config import Config, ConfigError, parse_config
from exporter.logs import setup_logging
from exporter.metrics import create_registry, new_statistics
from exporter.server import Server, Sweeper, stop_on_signals
from exporter.web import create_app, log_call_ended

log = logging.getLogger(__name__)


def build_server(config: Config) -> tuple[Server, Sweeper]:
    """The HTTP server and the background sweeper for one exporter."""
    tracker = CallTracker(new_statistics(), config.forward_grace, config.expire_after)
    app = create_app(tracker, create_registry(tracker), config.public_url)
    server = Server(app, config.listen_host, config.listen_port, config.threads)

    def sweep() -> None:
        for call in tracker.sweep(time.time()):
            log_call_ended(call)

    return server, Sweeper(sweep)


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
    setup_logging(config.log_level, config.log_format)
    log.info("starting sipgate-exporter %s", __version__)
    try:
        server, sweeper = build_server(config)
    except OSError as error:
        log.error(
            "cannot listen on %s:%s: %s%s",
            config.listen_host,
            config.listen_port,
            error.strerror or error,
            _listen_hint(error),
        )
        return 1
    stop_on_signals(server.stop_soon)
    sweeper.start()
    try:
        server.run()
    finally:
        sweeper.stop()
    log.info("stopped")
    return 0


def _listen_hint(error: OSError) -> str:
    if error.errno == 98:  # EADDRINUSE
        return " (another program uses this port: stop it or pick --web.listen-address)"
    if error.errno == 13:  # EACCES
        return " (ports below 1024 need privileges: use a higher port behind a reverse proxy)"
    return ""
