"""The status page's configuration and links sections; every value in them is escaped."""

from __future__ import annotations

import re
from html import escape
from typing import Final

from exporter.domain.service_level import ServiceTargets
from exporter.web.status_view import Setup

_HELP: Final = (
    "Pointing sipgate.io at the exporter",
    "Common trouble",
    "Security",
    "Configuration",
)
# A flag, with its value if given, but not the punctuation after it.
_FLAG: Final = re.compile(r"--[a-z][a-z.-]*[a-z](?:=[^\s),;]*[^\s),;.])?")


def flags_as_code(text: str) -> str:
    """Escape `text` and show the flags in it as code."""
    return _FLAG.sub(lambda match: f"<code>{match.group()}</code>", escape(text))


def setup_section(setup: Setup, config_file: str | None) -> str:
    """The lines, teams and thresholds in force, by name."""
    users = "off" if setup.users is None else f"on, {setup.users} users"
    source = (
        f"<code>{escape(config_file)}</code>"
        if config_file
        else flags_as_code("none: --config.file names lines, teams and users")
    )
    own = "".join(
        f"<br>{escape(line)}: {_targets(targets)}" for line, targets in setup.line_targets
    )
    flags = flags_as_code("(--calls.service-level-target, --calls.short-abandon)")
    return f"""<h2>Configuration</h2>
<dl id="setup">
<dt>Configuration file</dt><dd>{source}</dd>
<dt>Lines</dt><dd id="lines">{_names(setup.lines, "every call is on line other")}</dd>
<dt>Teams</dt><dd id="teams">{_names(setup.teams, "every call is in team other")}</dd>
<dt>Per-user statistics</dt><dd>{users}</dd>
<dt>Service level</dt><dd id="targets">{_targets(setup.targets)}
<span class="muted">{flags}</span>{own}</dd>
</dl>"""


def links_section(metrics_address: str | None, grafana_url: str | None) -> str:
    """Where the metrics, health, readiness and Grafana are, and which README sections help."""
    metrics = (
        f"Metrics for Prometheus are served on a separate address, "
        f"<code>{escape(metrics_address)}</code> (<code>--web.metrics-address</code>)"
        if metrics_address
        else '<a href="metrics">Metrics</a> for Prometheus to scrape'
    )
    grafana = ""
    if grafana_url and grafana_url.startswith(("https://", "http://")):
        grafana = f'\n<li><a href="{escape(grafana_url)}">Grafana</a> dashboards</li>'
    sections = ", ".join(f"“{section}”" for section in _HELP)
    return f"""<h2>Links</h2>
<ul id="links">
<li>{metrics}</li>
<li><a href="-/healthy">Health</a> and <a href="-/ready">readiness</a></li>{grafana}
</ul>
<p class="muted">Help: the README's sections {sections}.</p>"""


def _targets(targets: ServiceTargets) -> str:
    return (
        f"answered within {targets.answer_within:g}s counts in target; "
        f"a missed call shorter than {targets.short_abandon:g}s is a short abandon"
    )


def _names(names: tuple[str, ...], none: str) -> str:
    if not names:
        return f"none configured: {none}"
    return f"{len(names)}: " + ", ".join(escape(name) for name in names)
