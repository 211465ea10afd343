"""The exporter's settings and its Prometheus-style flags, each with an environment variable."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from exporter.config.values import (
    one_of,
    parse_bool,
    parse_duration,
    parse_link_url,
    parse_listen_address,
    parse_optional_path,
    parse_positive_duration,
    parse_positive_int,
    parse_public_url,
    parse_relay_timeout,
    parse_replica_name,
    parse_retries,
    parse_size,
    parse_state_url,
    parse_timeout,
    parse_upstream_url,
    parse_user_name,
    read_secret,
)
from exporter.domain.callbacks import DEFAULT_EXPIRE_AFTER as DEFAULT_CALLBACK_EXPIRY
from exporter.domain.callbacks import DEFAULT_MAX_PENDING
from exporter.domain.events import DEFAULT_LIMITS
from exporter.domain.service_level import DEFAULT_SHORT_ABANDON, DEFAULT_TARGET
from exporter.web.guard import DEFAULT_MAX_BODY_BYTES, Network, parse_networks, read_public_key

ENV_PREFIX: Final = "SIPGATE_EXPORTER_"
LOG_LEVELS: Final = ("debug", "info", "warn", "error")
LOG_LEVEL_ALIASES: Final = {"warning": "warn"}
LOG_FORMATS: Final = ("text", "json")

# Environment only: a flag value would show in `ps`.
PASSWORD_ENV: Final = ENV_PREFIX + "WEBHOOK_BASIC_AUTH_PASSWORD"
DEFAULT_STATE_PATH: Final = "data/sipgate-exporter.db"
STATE_SYNC_MODES: Final = ("normal", "full")
CALL_RECORD_NUMBERS: Final = ("full", "masked", "none")


@dataclass(frozen=True, slots=True)
class Config:
    """Validated settings of one exporter process."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 9850
    threads: int = 4
    public_url: str | None = None
    forward_grace: float = 10.0
    expire_after: float = 4 * 3600.0
    service_level_target: float = DEFAULT_TARGET
    short_abandon: float = DEFAULT_SHORT_ABANDON
    callbacks_expire_after: float = DEFAULT_CALLBACK_EXPIRY
    callbacks_max_pending: int = DEFAULT_MAX_PENDING
    log_level: str = "info"
    log_format: str = "text"
    metrics_address: tuple[str, int] | None = None
    read_timeout: float = 10.0
    request_timeout: float = 10.0
    max_connections: int = 1000
    max_connections_per_client: int = 32
    trusted_proxies: tuple[Network, ...] = ()
    verify_signature: bool = True
    signature_key: RSAPublicKey | None = None  # None: sipgate's key, bundled
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    allowed_networks: tuple[Network, ...] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_fields: int = DEFAULT_LIMITS.max_fields
    max_users: int = DEFAULT_LIMITS.max_users
    max_open_calls: int = 100_000
    state_path: Path | None = Path(DEFAULT_STATE_PATH)
    snapshot_interval: float = 30.0
    state_sync: str = "normal"
    state_reset: bool = False
    state_keep_unsigned: bool = False
    state_url: str | None = field(default=None, repr=False)  # may hold a password
    state_replica: str = field(default_factory=socket.gethostname)
    call_records_retention: float = 30 * 86400.0
    call_records_numbers: str = "full"
    config_file: Path | None = None
    check_config: bool = False
    enable_lifecycle: bool = False
    relay_upstream_url: str | None = None
    relay_upstream_url_in: str | None = None
    relay_upstream_url_out: str | None = None
    relay_timeout: float = 2.0
    relay_retries: int = 3
    grafana_url: str | None = None


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag: its name, the Config field it sets, how its text is parsed, its default."""

    name: str
    field: str
    parse: Callable[[str], Any]
    default: str
    help: str
    env_name: str | None = None
    shown_default: str | None = None

    @property
    def env(self) -> str:
        return self.env_name or ENV_PREFIX + re.sub(r"[.-]", "_", self.name).upper()


FLAGS: Final = (
    Flag(
        "web.listen-address",
        "listen",
        parse_listen_address,
        ":9850",
        "address to serve the webhook, status page and /metrics on",
    ),
    Flag(
        "web.metrics-address",
        "metrics_address",
        parse_listen_address,
        "",
        "a separate address (e.g. 127.0.0.1:9851) for /metrics, health and readiness; "
        "the main address then answers /metrics with 404",
        shown_default="none, /metrics on the main address",
    ),
    Flag(
        "web.threads", "threads", parse_positive_int, "4", "worker threads answering HTTP requests"
    ),
    Flag(
        "web.read-timeout",
        "read_timeout",
        parse_timeout,
        "10s",
        "close a connection that sent nothing for this long, idle or in the middle of a request",
    ),
    Flag(
        "web.request-timeout",
        "request_timeout",
        parse_timeout,
        "10s",
        "close a connection whose request head and body have not all arrived this long after "
        "its first byte, however steadily it trickles; sipgate gives up after about 10s",
    ),
    Flag(
        "web.max-connections",
        "max_connections",
        parse_positive_int,
        "1000",
        "most connections open at once on each listening address; more wait to be accepted "
        "(the open-files limit is raised to fit, up to its hard limit)",
    ),
    Flag(
        "web.max-connections-per-client",
        "max_connections_per_client",
        parse_positive_int,
        "32",
        "most connections open at once from one address (an IPv6 /64 counts as one); more "
        "are closed unread at once. "
        "Trusted proxies (--web.trusted-proxies) are exempt, being many clients",
    ),
    Flag(
        "web.trusted-proxies",
        "trusted_proxies",
        parse_networks,
        "",
        "comma-separated networks of reverse proxies whose X-Forwarded-For is believed",
        shown_default="none",
    ),
    Flag(
        "web.grafana-url",
        "grafana_url",
        parse_link_url,
        "",
        "http(s) URL of your Grafana dashboard, linked from the status page",
        shown_default="none",
    ),
    Flag(
        "webhook.public-url",
        "public_url",
        parse_public_url,
        "",
        "absolute URL sipgate reaches the webhook at, put into replies to newCall; "
        "a URL without a path gets /webhook appended; with basic auth, include the credentials "
        "as in https://user:pass@host/webhook, so that answer and hangup events carry them too",
        env_name=ENV_PREFIX + "PUBLIC_URL",
        shown_default="derived from each request: its Host header, or behind a proxy listed in "
        "--web.trusted-proxies its X-Forwarded-Host and X-Forwarded-Proto",
    ),
    Flag(
        "webhook.verify-signature",
        "verify_signature",
        parse_bool,
        "true",
        "refuse webhook requests without a valid X-Sipgate-Signature with 403",
    ),
    Flag(
        "webhook.signature-key",
        "signature_key",
        read_public_key,
        "",
        "PEM file of the RSA public key that signs webhook requests",
        shown_default="sipgate's key, bundled",
    ),
    Flag(
        "webhook.basic-auth-user",
        "basic_auth_user",
        parse_user_name,
        "",
        "require HTTP basic auth with this user name on the webhook, 401 otherwise",
        shown_default="none",
    ),
    Flag(
        "webhook.basic-auth-password-file",
        "basic_auth_password",
        read_secret,
        "",
        f"file holding the basic auth password; or set {PASSWORD_ENV}",
        shown_default="none",
    ),
    Flag(
        "webhook.allowed-networks",
        "allowed_networks",
        parse_networks,
        "",
        "comma-separated networks webhook requests may come from, 403 otherwise, "
        "e.g. sipgate's 217.116.118.254/32,212.9.46.32/32",
        shown_default="any",
    ),
    Flag(
        "webhook.max-body-bytes",
        "max_body_bytes",
        parse_size,
        "16KiB",
        "largest webhook body accepted, 413 otherwise",
    ),
    Flag(
        "webhook.max-fields",
        "max_fields",
        parse_positive_int,
        str(DEFAULT_LIMITS.max_fields),
        "most form fields in a webhook body, 400 otherwise",
    ),
    Flag(
        "webhook.max-users",
        "max_users",
        parse_positive_int,
        str(DEFAULT_LIMITS.max_users),
        "most user[] values in a newCall, 400 otherwise",
    ),
    Flag(
        "calls.forward-grace",
        "forward_grace",
        parse_duration,
        "10s",
        "how long a call whose last leg ended 'forwarded' waits for its next leg",
    ),
    Flag(
        "calls.expire-after",
        "expire_after",
        parse_duration,
        "4h",
        "end a call as 'expired' when none of its events arrived for this long",
    ),
    Flag(
        "calls.service-level-target",
        "service_level_target",
        parse_duration,
        "20s",
        "an incoming call answered after at most this wait counts as answered in target; "
        "a line in --config.file may set its own",
    ),
    Flag(
        "calls.short-abandon",
        "short_abandon",
        parse_duration,
        "5s",
        "a missed incoming call shorter than this is a short abandon, not offered; "
        "a line in --config.file may set its own",
    ),
    Flag(
        "callbacks.expire-after",
        "callbacks_expire_after",
        parse_positive_duration,
        "3d",
        "how long a missed caller stays owed a callback",
    ),
    Flag(
        "callbacks.max-pending",
        "callbacks_max_pending",
        parse_positive_int,
        str(DEFAULT_MAX_PENDING),
        "most callers owed a callback; past it the oldest debt is dropped and "
        "sipgate_callbacks_dropped_total counts it",
    ),
    Flag(
        "log.level",
        "log_level",
        one_of(LOG_LEVELS, LOG_LEVEL_ALIASES),
        "info",
        "least severe log level to print: " + ", ".join(LOG_LEVELS) + "; warning means warn",
    ),
    Flag(
        "log.format",
        "log_format",
        one_of(LOG_FORMATS),
        "text",
        "log line format: " + ", ".join(LOG_FORMATS),
    ),
    Flag(
        "calls.max-open",
        "max_open_calls",
        parse_positive_int,
        "100000",
        "most calls kept in progress; past it the oldest call ends as 'expired' and "
        "sipgate_calls_evicted_total counts it",
    ),
    Flag(
        "config.file",
        "config_file",
        parse_optional_path,
        "",
        "YAML file naming lines, teams and per-user statistics; reloaded on SIGHUP",
        shown_default="none",
    ),
    Flag(
        "check-config",
        "check_config",
        parse_bool,
        "false",
        "check the flags and the configuration file, then exit (0 if fine)",
    ),
    Flag(
        "web.enable-lifecycle",
        "enable_lifecycle",
        parse_bool,
        "false",
        "accept POST /-/reload to reload the configuration file",
    ),
    Flag(
        "state.path",
        "state_path",
        parse_optional_path,
        DEFAULT_STATE_PATH,
        "SQLite file that keeps statistics and calls in progress across restarts; "
        "empty turns persistence off",
    ),
    Flag(
        "state.snapshot-interval",
        "snapshot_interval",
        parse_timeout,
        "30s",
        "how often the whole state is written, replacing the journal of events before it",
    ),
    Flag(
        "state.sync",
        "state_sync",
        one_of(STATE_SYNC_MODES),
        "normal",
        "normal: every acknowledged event survives a crash of the exporter; "
        "full: also a crash of the machine, at the cost of a disk flush per event",
    ),
    Flag(
        "state.reset",
        "state_reset",
        parse_bool,
        "false",
        "move an existing state file aside (renamed *.old) and start with empty statistics",
    ),
    Flag(
        "state.keep-unsigned",
        "state_keep_unsigned",
        parse_bool,
        "false",
        "keep counting on a state file begun with --webhook.verify-signature=false (a try-out) "
        "now that the check is on; without it such a file is refused",
    ),
    Flag(
        "state.url",
        "state_url",
        parse_state_url,
        "",
        "postgresql://user:password@host:5432/database: keep the state in PostgreSQL, shared "
        "by several exporters, instead of --state.path (the password may also come from "
        "PGPASSWORD or a passfile)",
        shown_default="none, the state in --state.path",
    ),
    Flag(
        "state.replica",
        "state_replica",
        parse_replica_name,
        "",
        "this exporter's name among those sharing --state.url; two running exporters may "
        "not share one",
        shown_default="the host name",
    ),
    Flag(
        "state.call-records-retention",
        "call_records_retention",
        parse_positive_duration,
        "30d",
        "with --state.url: how long each ended call is kept in the table sipgate_exporter.calls",
    ),
    Flag(
        "state.call-records-numbers",
        "call_records_numbers",
        one_of(CALL_RECORD_NUMBERS),
        "full",
        "with --state.url: the callers' and callees' numbers in the call records: "
        + ", ".join(CALL_RECORD_NUMBERS)
        + " (calling back needs them; they are personal data)",
    ),
    Flag(
        "relay.upstream-url",
        "relay_upstream_url",
        parse_upstream_url,
        "",
        "relay mode: pass every event on to the application at this URL (the one sipgate "
        "used to call) and hand its XML replies to sipgate",
        shown_default="none, relay off",
    ),
    Flag(
        "relay.upstream-url-in",
        "relay_upstream_url_in",
        parse_upstream_url,
        "",
        "upstream URL for incoming calls only, instead of --relay.upstream-url",
        shown_default="--relay.upstream-url",
    ),
    Flag(
        "relay.upstream-url-out",
        "relay_upstream_url_out",
        parse_upstream_url,
        "",
        "upstream URL for outgoing calls only, instead of --relay.upstream-url",
        shown_default="--relay.upstream-url",
    ),
    Flag(
        "relay.timeout",
        "relay_timeout",
        parse_relay_timeout,
        "2s",
        "deadline for one request to the upstream; past it sipgate gets the exporter's own "
        "reply to newCall or dtmf",
    ),
    Flag(
        "relay.retries",
        "relay_retries",
        parse_retries,
        "3",
        "how often a failed answer or hangup is tried again in the background",
    ),
)
