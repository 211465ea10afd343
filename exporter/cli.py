"""The `sipgate-exporter` command: parse the command line, then serve, check or simulate."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from exporter import __version__
from exporter.config.command_line import parse_command
from exporter.config.file import load_label_config
from exporter.config.flags import Config
from exporter.config.reload import summary
from exporter.errors import ConfigError, ConfigFileError
from exporter.logs import setup_logging
from exporter.service import serve

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command in `argv` (default: serve until SIGTERM or SIGINT); the exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        config = parse_command(args, os.environ if environ is None else environ)
    except ConfigError as error:
        print(f"sipgate-exporter: error: {error}", file=sys.stderr)
        return 2
    if not isinstance(config, Config):
        return config()  # a subcommand, such as `simulate`
    if config.check_config:
        return _check_config(config)
    setup_logging(config.log_level, config.log_format)
    log.info("starting sipgate-exporter %s", __version__)
    _warn_about_security(config)
    return serve(config)


def _check_config(config: Config) -> int:
    shown = ""
    if config.config_file is not None:
        try:
            labels = load_label_config(config.config_file)
        except ConfigFileError as error:
            print(f"sipgate-exporter: error: {error}", file=sys.stderr)
            return 1
        shown = f" ({config.config_file}: {summary(labels)})"
    print(f"configuration OK{shown}")
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
