"""The status page's HTML, from a StatusView; every value in it is escaped."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, tzinfo
from html import escape
from typing import Final

from exporter import __version__
from exporter.web.status_assets import HEADERS, SCRIPT, STYLE
from exporter.web.status_setup import flags_as_code, links_section, setup_section
from exporter.web.status_view import DANGER, OK, WARNING, Check, Figures, StatusView

__all__ = ["HEADERS", "render"]

_REFUSED: Final = "refused:"
_MARKS: Final = {OK: "✓", WARNING: "!", DANGER: "✗"}
# The refusals a guard makes, said plainly; the others are bodies that are no sipgate event.
_REASONS: Final = {
    "signature": "no valid signature (403)",
    "source": "source address not allowed (403)",
    "auth": "basic auth missing or wrong (401)",
    "too_large": "body too large (413)",
}


def render(view: StatusView, zone: tzinfo | None = None) -> str:
    """The whole page; times are local to `zone`, or to the system when None."""
    clock = _Clock(zone)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sipgate.io exporter status</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<header><h1>sipgate.io call statistics exporter</h1>
<span class="version">version {escape(__version__)}</span></header>
{_checks(view.checks)}
<h2>Webhook URL</h2>
<p>In the sipgate console, under Webhooks &rarr; URLs, enter this URL for incoming and
outgoing calls:</p>
<div class="url"><code id="webhook-url">{escape(view.webhook_url)}</code>
<button id="copy" type="button" hidden>Copy</button></div>
<p id="copy-status" class="muted" role="status"></p>
{_figures(view.figures, clock)}
{_state(view.settings.state_path, view.settings.state_database)}
{setup_section(view.setup, view.settings.config_file)}
{links_section(view.settings.metrics_address, view.settings.grafana_url)}
<footer>As of {clock.time(view.figures.now)}; reload the page to update.</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""


class _Clock:
    def __init__(self, zone: tzinfo | None) -> None:
        self._zone = zone

    def _at(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, self._zone).astimezone(self._zone)

    def time(self, at: float, form: str = "%H:%M:%S %Z") -> str:
        return escape(self._at(at).strftime(form))

    def stamp(self, at: float) -> str:
        moment = self._at(at)
        shown = moment.strftime("%Y-%m-%d %H:%M:%S %Z")
        return f'<time datetime="{moment.isoformat()}">{escape(shown)}</time>'


def _checks(checks: tuple[Check, ...]) -> str:
    failed = Counter(check.level for check in checks if check.level != OK)
    level = DANGER if failed[DANGER] else WARNING if failed[WARNING] else OK
    if level == OK:
        headline = "All is well."
    else:
        named = ((failed[DANGER], "problem"), (failed[WARNING], "warning"))
        headline = " and ".join(_count(n, noun) for n, noun in named if n) + ": see below."
    items = "\n".join(
        f'<li class="{check.level}" data-check="{escape(check.name)}">'
        f'<span class="mark">{_MARKS[check.level]}</span> '
        f'<span class="text">{flags_as_code(check.text)}</span>'
        + (f' <span class="fix">{flags_as_code(check.fix)}</span>' if check.fix else "")
        + "</li>"
        for check in checks
    )
    return f"""<div id="verdict" class="banner {level}" data-level="{level}">{headline}</div>
<ul class="checks">
{items}
</ul>"""


def _figures(figures: Figures, clock: _Clock) -> str:
    today = figures.today
    if figures.last_received:
        last = _ago(figures.now - figures.last_received)
        last_at = clock.stamp(figures.last_received)
    else:
        last, last_at = "no events yet", "nothing received so far"
    since = (
        f"since the exporter started at {clock.time(figures.since, '%H:%M %Z')}"
        if figures.since_start
        else f"since midnight ({clock.time(figures.since, '%H:%M %Z')})"
    )
    calls_in, calls_out = today["calls:in"], today["calls:out"]
    ringing, talking = figures.ringing, figures.talking
    cards = (
        _card("last-event", "Last event", last, last_at, words=True),
        _card("events-today", "Events today", str(today["events"]), since),
        _card(
            "calls-today",
            "Calls today",
            str(calls_in + calls_out),
            f"{calls_in} incoming, {calls_out} outgoing",
        ),
        _card(
            "in-progress",
            "Calls in progress",
            str(ringing + talking),
            f"{ringing} ringing, {talking} talking",
        ),
    )
    return f"""<h2>Receiving</h2>
<div class="cards">
{"".join(cards)}
</div>
<h3>Refused requests</h3>
{_refusals(today, figures.totals)}"""


def _card(name: str, title: str, figure: str, note: str, words: bool = False) -> str:
    big = "big words" if words else "big"
    return (
        f'<div class="card" id="{name}"><h3>{title}</h3>'
        f'<p class="{big}">{escape(figure)}</p><p class="muted">{note}</p></div>'
    )


def _refusals(today: Counter[str], totals: Counter[str]) -> str:
    reasons = sorted(
        key[len(_REFUSED) :] for key, n in totals.items() if n and key.startswith(_REFUSED)
    )
    rows = [
        (_REASONS.get(reason, f"not a sipgate event: {reason} (400)"), _REFUSED + reason)
        for reason in reasons
    ]
    if totals["failed"]:
        rows.append(("failed inside the exporter (500)", "failed"))
    if not rows:
        return '<p id="refused">None.</p>'
    body = "\n".join(
        f'<tr><td>{escape(text)}</td><td class="n">{today[key]}</td>'
        f'<td class="n">{totals[key]}</td></tr>'
        for text, key in rows
    )
    return f"""<table id="refused">
<thead><tr><th>reason</th><th class="n">today</th><th class="n">in total</th></tr></thead>
<tbody>
{body}
</tbody>
</table>"""


def _state(path: str | None, database: str | None) -> str:
    if database is not None:
        kept = f"shared in the PostgreSQL database <code>{escape(database)}</code>"
    elif path is None:
        kept = "not kept: <code>--state.path</code> is empty, counts start from zero at every start"
    else:
        kept = f"kept in <code>{escape(path)}</code> and its journal, across restarts"
    return f'<p id="state"><strong>State:</strong> {kept}.</p>'


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return _count(int(seconds // size), unit) + " ago"
    return _count(int(seconds), "second") + " ago"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
