"""The status page's inline style and script, and the headers that allow exactly these two."""

from __future__ import annotations

import base64
import hashlib
from typing import Final

STYLE: Final = """
:root { color-scheme: light; --ok: #1a7f37; --ok-bg: #dafbe1; --warning: #7d4e00;
  --warning-bg: #fff8c5; --danger: #b3261e; --danger-bg: #ffebe9; --line: #d0d7de;
  --muted: #57606a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 56rem; padding: 1rem; color: #1f2328; background: #fff;
  font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 1rem; }
h1 { font-size: 1.4rem; margin: 0.2rem 0 0.6rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 0.5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 0.85rem; margin: 0; color: var(--muted); font-weight: 600; }
.muted, .version { color: var(--muted); }
.banner { border-radius: 6px; padding: 0.7rem 1rem; font-weight: 600; border: 1px solid; }
.banner.ok { color: var(--ok); background: var(--ok-bg); }
.banner.warning { color: var(--warning); background: var(--warning-bg); }
.banner.danger { color: var(--danger); background: var(--danger-bg); }
.checks { list-style: none; padding: 0; margin: 0.6rem 0 0; }
.checks li { padding: 0.35rem 0 0.35rem 1.8rem; position: relative; }
.checks .mark { position: absolute; left: 0.2rem; font-weight: 700; }
.checks .ok .mark { color: var(--ok); }
.checks .warning .mark { color: var(--warning); }
.checks .danger .mark { color: var(--danger); }
.checks .warning .text { color: var(--warning); font-weight: 600; }
.checks .danger .text { color: var(--danger); font-weight: 600; }
.fix { display: block; color: var(--muted); font-size: 0.9rem; }
.url { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; }
.url code { flex: 1 1 16rem; padding: 0.5rem 0.7rem; background: #f6f8fa; border-radius: 6px;
  border: 1px solid var(--line); overflow-wrap: anywhere; font-size: 0.95rem; }
button { font: inherit; padding: 0.45rem 1rem; border-radius: 6px; cursor: pointer;
  border: 1px solid #1f883d; background: #1f883d; color: #fff; }
[hidden] { display: none !important; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: 0.6rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 0.8rem; }
.card p { margin: 0; }
.big { font-size: 1.5rem; font-weight: 600; }
.big.words { font-size: 1.2rem; line-height: 1.8rem; }
.cards + h3 { margin-top: 1rem; }
code { font-size: 0.92em; }
.card .muted { font-size: 0.85rem; }
table { border-collapse: collapse; width: 100%; max-width: 36rem; font-size: 0.95rem; }
th, td { text-align: left; padding: 0.25rem 0.5rem 0.25rem 0;
  border-bottom: 1px solid var(--line); }
td.n, th.n { text-align: right; }
dl { display: grid; grid-template-columns: minmax(8rem, max-content) 1fr; gap: 0.3rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
@media (max-width: 30rem) { dl { grid-template-columns: 1fr; } dd { margin-bottom: 0.4rem; } }
footer { margin-top: 2rem; font-size: 0.85rem; color: var(--muted); }
"""

# Copies the URL; where the clipboard API is missing (plain http from another host is no
# secure context) it selects the URL and tries the older copy command.
SCRIPT: Final = """
(function () {
  var button = document.getElementById("copy");
  var url = document.getElementById("webhook-url");
  var said = document.getElementById("copy-status");
  function select() {
    var range = document.createRange();
    range.selectNodeContents(url);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    said.textContent = copied ? "Copied." : "Selected: press Ctrl+C to copy.";
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    if (!navigator.clipboard || !window.isSecureContext) { select(); return; }
    navigator.clipboard.writeText(url.textContent).then(function () {
      said.textContent = "Copied.";
    }, select);
  });
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing but this style and this script runs, and nothing is fetched: the page works offline.
HEADERS: Final = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "; ".join(
        (
            "default-src 'none'",
            f"style-src {_sha256(STYLE)}",
            f"script-src {_sha256(SCRIPT)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
