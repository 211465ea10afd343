"""Build the sipgate.io calls dashboard (grafana/dashboards/sipgate.json) from code.

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

try:
    from dashboard import build
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
except ModuleNotFoundError as missing:
    # Plain python3 lacks the SDK; the project venv has it from pyproject's test extra.
    sys.exit(f"{missing}: run make -C grafana dashboard, or pip install -e '.[test]' first")

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "sipgate.json"


def render() -> str:
    """Return the dashboard as the exact text committed in OUTPUT."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard, or with --check report whether the committed file is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only, exit 1 on drift")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run make -C grafana dashboard", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
