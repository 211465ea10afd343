"""What is measured: the baseline and the exporter configurations, started fresh for each run."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.procs import Process, start_baseline, start_exporter


@dataclass(frozen=True, slots=True)
class Target:
    """A server to load: the baseline, or the exporter with or without state and signatures."""

    name: str
    label: str
    exporter: bool
    durable: bool = False
    signed: bool = False


BASELINE: Final = Target("baseline", "baseline (Bottle + waitress, parse_qsl, one counter)", False)
# What checking sipgate's RSA-4096 signature costs any webhook, with nothing else added.
SIGNED_BASELINE: Final = Target(
    "baseline-signed", "baseline + the same signature check", False, signed=True
)
PLAIN: Final = Target("plain", "exporter, persistence off", True)
DURABLE: Final = Target("durable", "exporter, durable state", True, durable=True)
DEFAULT: Final = Target(
    "default", "exporter, durable state + signature check (defaults)", True, True, True
)
TARGETS: Final = (BASELINE, SIGNED_BASELINE, PLAIN, DURABLE, DEFAULT)

_runs = itertools.count(1)


def exporter_flags(target: Target, workdir: Path, threads: int, key: Path) -> list[str]:
    """The command-line flags of one fresh exporter run; each durable run gets a new file."""
    flags = [f"--web.threads={threads}"]
    if target.durable:
        flags.append(f"--state.path={workdir / f'state-{next(_runs)}.db'}")
    else:
        flags.append("--state.path=")
    if target.signed:
        flags += ["--webhook.verify-signature=true", f"--webhook.signature-key={key}"]
    else:
        flags.append("--webhook.verify-signature=false")
    return flags


def start(target: Target, workdir: Path, threads: int, key: Path) -> Process:
    """Start a fresh server for `target` and wait until it is ready."""
    if not target.exporter:
        return start_baseline(workdir, threads, key if target.signed else None)
    return start_exporter(workdir, exporter_flags(target, workdir, threads, key), target.name)
