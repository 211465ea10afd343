"""Helpers for the end-to-end stack test: time-scaled configs, processes, Prometheus and parsing.

The shipped rules watch windows of 15 minutes to a week, far too long for a test. The stack test
therefore runs them on a scaled clock: every duration in the rules (range selectors such as
``[15m]``, subquery steps, ``offset 1w``, ``for:``, ``keep_firing_for:`` and group ``interval:``)
is divided by one factor, so that with a factor of 60 one real second plays one minute
(15m -> 15s, 1h -> 1m, 1d -> 24m, 1w -> 2h48m). Only the duration literals change: metric and rule
names (``...:ratio1d``), thresholds, operators, label matchers and the shape of every expression
stay exactly as shipped, so the test exercises the shipped logic, just faster.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.http_helpers import fetch, try_fetch

T = TypeVar("T")

_UNITS_MS: Final = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
# Units to write a scaled duration with, largest first: any whole number of milliseconds comes
# out exact, and 2h48m reads better than 168m.
_OUTPUT_UNITS: Final = (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_DURATION: Final = r"(?:\d+(?:ms|[ywdhms]))+"
_DURATION_PART: Final = re.compile(r"(\d+)(ms|[ywdhms])")
# A range or subquery selector: [5m] or [1h:30s] or [1h:].
_RANGE: Final = re.compile(rf"\[\s*({_DURATION})\s*(?::\s*({_DURATION})?\s*)?\]")
_OFFSET: Final = re.compile(rf"\boffset(\s+)(-?)({_DURATION})\b")
# Rule keys whose value is a single duration.
_DURATION_KEYS: Final = ("for", "keep_firing_for")


def parse_duration_ms(text: str) -> int:
    """Return a Prometheus duration such as ``1h30m`` in milliseconds."""
    if not re.fullmatch(_DURATION, text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _UNITS_MS[unit] for number, unit in _DURATION_PART.findall(text))


def format_duration_ms(milliseconds: int) -> str:
    """Write milliseconds as a compound Prometheus duration, e.g. 10080000 -> ``2h48m``."""
    if milliseconds == 0:
        return "0s"
    parts = []
    for unit, size in _OUTPUT_UNITS:
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def scale_duration(text: str, factor: int) -> str:
    """Divide a Prometheus duration by factor; raise ValueError unless it divides exactly."""
    milliseconds = parse_duration_ms(text)
    if milliseconds % factor:
        raise ValueError(f"{text} is not a whole number of milliseconds when divided by {factor}")
    return format_duration_ms(milliseconds // factor)


def scale_promql(expr: str, factor: int) -> str:
    """Divide every range, subquery step and offset duration in a PromQL text by factor."""

    def scaled_range(match: re.Match[str]) -> str:
        window, step = match.group(1), match.group(2)
        if ":" not in match.group(0):
            return f"[{scale_duration(window, factor)}]"
        return f"[{scale_duration(window, factor)}:{scale_duration(step, factor) if step else ''}]"

    def scaled_offset(match: re.Match[str]) -> str:
        space, sign, duration = match.groups()
        return f"offset{space}{sign}{scale_duration(duration, factor)}"

    return _OFFSET.sub(scaled_offset, _RANGE.sub(scaled_range, expr))


def scale_rule_file(document: Mapping[str, Any], factor: int) -> dict[str, Any]:
    """Return a copy of a rule file with every duration divided by factor (see module doc).

    Expressions and annotations (whose templates may run queries) get `scale_promql`; `for`,
    `keep_firing_for` and a group's `interval` get `scale_duration`. Nothing else changes.
    """
    scaled: dict[str, Any] = copy.deepcopy(dict(document))
    for group in scaled.get("groups", []):
        if "interval" in group:
            group["interval"] = scale_duration(group["interval"], factor)
        for rule in group.get("rules", []):
            rule["expr"] = scale_promql(str(rule["expr"]), factor)
            for key in _DURATION_KEYS:
                if key in rule:
                    rule[key] = scale_duration(str(rule[key]), factor)
            annotations = rule.get("annotations", {})
            for name, text in annotations.items():
                annotations[name] = scale_promql(str(text), factor)
    return scaled


def rewrite_prometheus_config(
    shipped: Mapping[str, Any], addresses: Mapping[str, str | None], interval: str
) -> dict[str, Any]:
    """Return the shipped prometheus.yml with its targets replaced and its intervals shortened.

    `addresses` maps every shipped target ("exporter:9850", and "exporter-1:9850" for each name
    that `dns_sd_configs` looks up) to the test's ("127.0.0.1:PORT"), or to None where that
    service does not run in the test; looked-up names become static targets. A target without
    an entry raises KeyError, so a new shipped target is not silently scraped at an address
    that does not exist here.
    """
    config: dict[str, Any] = copy.deepcopy(dict(shipped))
    config.setdefault("global", {}).update(scrape_interval=interval, evaluation_interval=interval)

    def rewrite(static_configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for static in static_configs:
            found = [_replacement(addresses, t) for t in static["targets"]]
            static["targets"] = [target for target in found if target is not None]
        return [static for static in static_configs if static["targets"]]

    for job in config.get("scrape_configs", []):
        for key in ("scrape_interval", "scrape_timeout"):
            if key in job:
                job[key] = interval
        looked_up = [
            {"targets": [f"{name}:{lookup['port']}" for name in lookup["names"]]}
            for lookup in job.pop("dns_sd_configs", [])
        ]
        job["static_configs"] = rewrite([*job.get("static_configs", []), *looked_up])
    for alertmanager in config.get("alerting", {}).get("alertmanagers", []):
        alertmanager["static_configs"] = rewrite(alertmanager.get("static_configs", []))
    return config


def _replacement(addresses: Mapping[str, str | None], target: str) -> str | None:
    if target not in addresses:
        raise KeyError(f"no test address for the shipped target {target!r}")
    return addresses[target]


# --- the simulator's summary ------------------------------------------------------------------


_SUMMARY_ROW: Final = re.compile(r"^(in|out)\s+(\w+)\s+(\d+)$")
_SUMMARY_TOTAL: Final = re.compile(r"^total\s+(\d+)$")


def parse_summary(stdout: str) -> dict[tuple[str, str], int]:
    """Return the calls per (direction, outcome) of the simulator's summary table."""
    rows = {}
    total = None
    for line in stdout.splitlines():
        line = line.strip()
        if row := _SUMMARY_ROW.match(line):
            rows[(row.group(1), row.group(2))] = int(row.group(3))
        elif match := _SUMMARY_TOTAL.match(line):
            total = int(match.group(1))
    if total is None or sum(rows.values()) != total:
        raise ValueError(f"no consistent summary table in the simulator's output:\n{stdout}")
    return rows


_CALLBACKS: Final = re.compile(
    r"^callbacks: called_back (\d+), called_again (\d+), still owed (-?\d+)$", re.M
)


def parse_callbacks(stdout: str) -> dict[str, int]:
    """Return the simulator's callback line: debts settled by result, and those still owed."""
    match = _CALLBACKS.search(stdout)
    if match is None:
        raise ValueError(f"no callback line in the simulator's output:\n{stdout}")
    back, again, owed = map(int, match.groups())
    return {"called_back": back, "called_again": again, "still_owed": owed}


def write_key_pair(directory: Path) -> tuple[Path, Path]:
    """Write a fresh RSA key pair as PEM files; return (private key, public key) paths.

    The simulator signs every webhook with the private key like sipgate does, and the exporter
    checks the signature with the public one, as it does by default with sipgate's own key.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "signing-key.pem", directory / "signing-key.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


# --- ports, binaries, processes, polling --------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Return count distinct loopback ports that were free a moment ago."""
    with contextlib.ExitStack() as held:
        probes = [held.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))  # all bound at once, so no port comes twice
        return [int(probe.getsockname()[1]) for probe in probes]


def binary(*names: str, package: str) -> str:
    """Return the first of names on the PATH; fail the test (CI installs them) if none is."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail(f"{' or '.join(names)} not found: apt-get install -y {package} (Debian package)")


@dataclass
class Service:
    """A background process whose output goes to a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        """The last lines of the process's output."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Fail with the log tail if the process has exited."""
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"{self.name} exited with status {code}:\n{self.tail()}")


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Terminate a process and wait for it; kill it if it does not stop in time."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def service(name: str, argv: Sequence[str], workdir: Path, cwd: Path) -> Iterator[Service]:
    """Run argv in the background for the duration of the block, its output in workdir."""
    log = workdir / f"{name}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        yield Service(name, process, log)
    finally:
        stop(process)


def poll(
    probe: Callable[[], T | bool | None],
    timeout: float,
    interval: float = 0.25,
    alive: Sequence[Service] = (),
) -> T | None:
    """Call probe until it returns something other than None or False; None after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for running in alive:
            running.check_alive()
        result = probe()
        if result is not None and result is not False:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def wait_for(
    probe: Callable[[], T | bool | None],
    timeout: float,
    what: str,
    alive: Sequence[Service] = (),
) -> T:
    """Like `poll`, but fail the test with the services' logs after timeout."""
    result = poll(probe, timeout, alive=alive)
    if result is None:
        logs = "\n".join(f"--- {s.name}:\n{s.tail()}" for s in alive)
        pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{logs}")
    return result


# --- HTTP -------------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """GET url; return status and body, also for HTTP errors."""
    reply = fetch(url, timeout=timeout)
    return reply.status, reply.body


def is_ready(base_url: str) -> bool:
    """Tell whether a Prometheus-style server answers /-/ready with 200."""
    reply = try_fetch(f"{base_url}/-/ready")
    return reply is not None and reply.status == 200


def get_json(url: str) -> Any:
    """GET url and decode its JSON body."""
    status, body = http_get(url)
    if status != 200:
        raise AssertionError(f"GET {url} answered {status}: {body[:500]!r}")
    return json.loads(body)


def prometheus_query(base_url: str, expr: str, at: float | None = None) -> dict[str, Any]:
    """Run an instant query and return the whole response (status, data or error)."""
    form = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    reply = fetch(f"{base_url}/api/v1/query", urllib.parse.urlencode(form), timeout=10)
    body: dict[str, Any] = json.loads(reply.body)
    return body


def query_vector(base_url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """Run an instant query that must succeed; return its result list."""
    body = prometheus_query(base_url, expr, at)
    if body.get("status") != "success":
        raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def query_scalar(base_url: str, expr: str, at: float | None = None) -> float | None:
    """The value of a query that returns at most one sample; None when it returns none."""
    result = query_vector(base_url, expr, at)
    if not result:
        return None
    if len(result) > 1:
        raise AssertionError(f"{expr}: expected one sample, got {result}")
    return float(result[0]["value"][1])


def sums_by(base_url: str, metric: str, label: str, at: float | None = None) -> dict[str, float]:
    """The job "sipgate" series of metric summed by one label: {label value: sum}."""
    result = query_vector(base_url, f'sum by ({label}) ({metric}{{job="sipgate"}})', at)
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in result}


def rule_evaluated_after(base_url: str, moment: float) -> bool:
    """Tell whether every alerting rule group was evaluated after the Unix time moment."""
    groups = get_json(f"{base_url}/api/v1/rules?type=alert")["data"]["groups"]
    return bool(groups) and all(parse_rfc3339(group["lastEvaluation"]) > moment for group in groups)


def parse_rfc3339(text: str) -> float:
    """Unix time of an RFC 3339 timestamp with up to nanoseconds, as Prometheus writes them."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return datetime.fromisoformat(trimmed).timestamp()


def has_number(result: Sequence[Mapping[str, Any]]) -> bool:
    """Tell whether an instant vector holds at least one sample that is not NaN."""
    return any(not math.isnan(float(sample["value"][1])) for sample in result)
