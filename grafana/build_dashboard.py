"""Build the dashboards (grafana/dashboards/sipgate.json, sipgate-call-log.json) from code.

The panels are in the package grafana/dashboard/, built with the Grafana Foundation SDK
(grafana-foundation-sdk, pinned in pyproject.toml's test extra). Run
`make -C grafana dashboard` (or this file with the project venv's python) after editing;
`--check` only compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

try:
    from dashboard import build, build_call_log
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
except ModuleNotFoundError as missing:
    # Plain python3 lacks the SDK; the project venv has it from pyproject's test extra.
    sys.exit(f"{missing}: run make -C grafana dashboard, or pip install -e '.[test]' first")

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
OUTPUT = DASHBOARDS / "sipgate.json"
CALL_LOG = DASHBOARDS / "sipgate-call-log.json"


def render(dashboard: Any = None) -> str:
    """Return a dashboard (the calls dashboard by default) as the exact text committed."""
    built = build() if dashboard is None else dashboard
    return json.dumps(built, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with --check report whether the committed files are current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only, exit 1 on drift")
    args = parser.parse_args(argv)
    status = 0
    for output, dashboard in ((OUTPUT, build()), (CALL_LOG, build_call_log())):
        text = render(dashboard)
        if args.check:
            current = output.read_text(encoding="utf-8") if output.exists() else ""
            if current != text:
                print(f"{output} is stale: run make -C grafana dashboard", file=sys.stderr)
                status = 1
            continue
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
