"""The exporter's own health: webhook, process and configuration."""

from __future__ import annotations

from grafana_foundation_sdk.models.common import BigValueTextMode

from dashboard.panels import (
    stat,
    target,
)
from dashboard.queries import (
    increase,
    own,
    sum_by,
)

from .shapes import (
    Panels,
    named_stat,
    per_minute_panel,
    quantiles_panel,
    rate_panel,
    series,
)


def health_row() -> Panels:
    """Return the exporter's own health: webhooks, the process, the configuration."""
    return [*webhook_panels(), *process_panels(), *config_panels()]


def webhook_panels() -> Panels:
    """Return how the webhook is used and answered, and when it was last reached."""
    handling = own("sipgate_webhook_request_duration_seconds_bucket")
    last_event = f"time() - max ({own('sipgate_webhook_last_received_timestamp_seconds')} > 0)"
    return [
        rate_panel(
            "Webhook requests",
            "Webhook requests per second received from sipgate.io, by event and HTTP status.",
            "reqps",
            "sipgate_webhook_requests_total",
            "event, code",
            8,
        ),
        rate_panel(
            "Rejected webhook requests",
            "Webhook requests the exporter refused, by reason. Should stay at zero.",
            "reqps",
            "sipgate_webhook_rejected_requests_total",
            "reason",
            8,
        ),
        quantiles_panel(
            "Webhook handling time",
            "Time the exporter takes to handle one webhook request: median and 99th percentile.",
            handling,
            {0.5: "median", 0.99: "99th percentile"},
            width=8,
        ),
        stat(
            "Last webhook event",
            "Time since the last webhook event reached the exporter. Empty until the first "
            "event; long gaps during business hours mean sipgate.io cannot reach the exporter.",
            "s",
            [target(last_event, "age", instant=True)],
            height=8,
            steps=(("green", None), ("orange", 3600), ("red", 86400)),
        ),
        rate_panel(
            "Unmatched events",
            "Events per second that matched no known call (e.g. a hangup for a call the "
            "exporter never saw start), by event.",
            "eps",
            "sipgate_events_unmatched_total",
            "event",
            6,
        ),
        rate_panel(
            "State write failures",
            "Writes to the state files that failed per second, by part. A failing journal "
            "refuses webhooks with 500 until it can be written again (is the disk full?); a "
            "failing snapshot is tried again later. Should stay at zero.",
            "ops",
            "sipgate_state_write_errors_total",
            "part",
            6,
        ),
        rate_panel(
            "Connections dropped",
            "Connections per second refused when accepted (source, per_client) or closed before "
            "their request had arrived (request_timeout, read_timeout). Bursts mean a client "
            "holds connections open or trickles its requests.",
            "ops",
            "sipgate_web_connections_dropped_total",
            "reason",
            8,
        ),
    ]


def process_panels() -> Panels:
    """Return the running exporters' versions, memory and CPU."""
    versions = f"max by (version) ({own('sipgate_exporter_build_info')})"
    memory = f"max by (instance) ({own('process_resident_memory_bytes')})"
    return [
        named_stat(
            "Exporter version",
            "Version of each running exporter (sipgate_exporter_build_info).",
            "none",
            versions,
            "version",
            height=8,
            text_mode=BigValueTextMode.NAME,
        ),
        series(
            "Exporter memory",
            "Resident memory of the exporter process.",
            "bytes",
            memory,
            "instance",
            width=4,
        ),
        rate_panel(
            "Exporter CPU",
            "CPU time the exporter process uses per second of wall time.",
            "percentunit",
            "process_cpu_seconds_total",
            "instance",
            4,
        ),
    ]


def config_panels() -> Panels:
    """Return the health of the exporter's configuration file and its label caps."""
    reloads = sum_by("outcome", increase(own("sipgate_config_reloads_total")))
    loaded = f"min ({own('sipgate_config_last_reload_successful')})"
    return [
        series(
            "Configuration reloads",
            "Reloads of the exporter's configuration file (SIGHUP or POST /-/reload), by "
            "outcome. A failed reload keeps the previous configuration.",
            "short",
            reloads,
            "outcome",
            width=8,
        ),
        stat(
            "Configuration loaded",
            "Whether the last (re)load of the configuration file succeeded on every instance "
            "(1: yes, 0: the exporter runs on an older configuration; see its log).",
            "bool_yes_no",
            [target(loaded, "loaded", instant=True)],
            steps=(("red", None), ("green", 1)),
            height=8,
        ),
        per_minute_panel(
            "Label values folded into other",
            "Lines, teams or users counted as 'other' per minute because their label reached "
            "its configured cap of distinct values. Should stay at zero; raise the cap or "
            "shorten the configuration.",
            own("sipgate_label_values_overflow_total"),
            "label",
        ),
    ]
