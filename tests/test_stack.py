"""End to end: exporter, real Prometheus with the shipped config and rules, real Alertmanager.

One module fixture starts the three programs on free loopback ports, feeds the exporter with the
simulator (a normal period, then a burst of unanswered calls) and records what it saw; the tests
below each assert one thing about it. The exporter runs with a configuration file that names the
simulator's numbers as lines and its staff as teams, with per-user statistics on. The rules run
on a clock sped up by `SCALE` (see `tests.stack_helpers`), and the simulator runs at the same
speed, so one real second plays one minute for the traffic and for the alerts alike.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from exporter.simulate.traffic import ACCOUNT_LINES, STAFF
from tests.dashboard_queries import PanelQuery, panel_queries
from tests.haproxy import running_haproxy
from tests.postgres import postgres
from tests.postgres_cluster import Cluster
from tests.stack_helpers import (
    Service,
    binary,
    format_duration_ms,
    free_ports,
    get_json,
    has_number,
    is_ready,
    parse_callbacks,
    parse_duration_ms,
    parse_summary,
    poll,
    prometheus_query,
    query_scalar,
    query_vector,
    rewrite_prometheus_config,
    rule_evaluated_after,
    scale_duration,
    scale_promql,
    scale_rule_file,
    service,
    stop,
    sums_by,
    wait_for,
    write_key_pair,
)

__all__ = ["postgres"]

REPO: Final = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG: Final = REPO / "prometheus.yml"
ALERTMANAGER_CONFIG: Final = REPO / "alertmanager" / "alertmanager.yml"

# One real second plays one minute: rule durations are divided by SCALE and the simulator runs
# SCALE simulated seconds per real second.
SCALE: Final = 60
INTERVAL: Final = "1s"  # scrape and rule evaluation interval
# The exporter's service level thresholds (20 s and 5 s by default) on the same clock, so that
# the simulator's slow answers and short abandons fall on their side of them.
SERVICE_LEVEL_TARGET: Final = format_duration_ms(20_000 // SCALE)
SHORT_ABANDON: Final = format_duration_ms(5_000 // SCALE)
SPIKE: Final = "SipgateMissedCallSpike"

# The exporter's --config.file: two of the simulator's three numbers are the support hotline, the
# third is sales; Doc is in no team (team "other"). Every user is counted on their own.
LINES: Final = {ACCOUNT_LINES[0]: "support", ACCOUNT_LINES[1]: "support", ACCOUNT_LINES[2]: "sales"}
TEAMS: Final = {
    "Alice": "support",
    "Bob": "support",
    "Jürgen": "support",
    "Zoë": "sales",
    "Marty": "sales",
}
TEAMS_WITH_OTHER: Final = {*TEAMS.values(), "other"}
# Support gets two thirds of the calls: enough in the burst for the per-line volume minimum.
SPIKE_LINE: Final = "support"

# Normal period: 4 calls a (simulated) minute for 30 s, i.e. half an hour of traffic, 95 % of it
# answered. Seed 2 sends 78 incoming calls, 6 of them not answered by a person: the normal level
# the spike is measured against; 10 answers come late and 4 by no named user, 1 missed caller
# calls again and 5 are called back. Its last event goes out ~36 s after the start.
NORMAL: Final = ("--seed", "2", "--rate", "4", "--duration", "30s", "--answer-probability", "0.95")
# Burst: nobody answers for 20 s (50 incoming calls: voicemail, busy, missed with 8 short
# abandons, ...). The scaled alert needs >= 10 incoming calls in its 15 s window and a share of
# unanswered calls above twice (and 20 points above) the whole run's share, which stays below one
# half. Another seed, so that call ids do not repeat those of the normal period.
BURST: Final = (
    "--seed",
    "3",
    "--rate",
    "4",
    "--duration",
    "20s",
    "--answer-probability",
    "0",
    "--voicemail-probability",
    "0.3",
    "--busy-probability",
    "0.2",
)
SIMULATOR_TIMEOUT: Final = 90.0
# After the burst's calls started, by when the alert must be in Alertmanager: about 8 s until the
# 15 s window tips over, the 5 s `for:`, plus slack for a slow machine.
SPIKE_DEADLINE: Final = 60.0
SETTLE_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Loopback:
    """A port on 127.0.0.1 as host:port (how servers listen and targets are labelled) and URL."""

    address: str
    url: str

    @classmethod
    def on(cls, port: int) -> Loopback:
        address = f"127.0.0.1:{port}"
        return cls(address, f"http://{address}")


@dataclass(frozen=True)
class Ports:
    """Where each server of the test stack listens: free loopback ports. With `replicas`, the
    webhook address `exporter` is haproxy's, in front of the replicas."""

    exporter: Loopback
    prometheus: Loopback
    alertmanager: Loopback
    replicas: tuple[Loopback, ...] = ()

    @classmethod
    def pick(cls, replicas: int = 0) -> Ports:
        """Ports that were free a moment ago."""
        exporter, prometheus, alertmanager, *rest = map(Loopback.on, free_ports(3 + replicas))
        return cls(exporter, prometheus, alertmanager, tuple(rest))

    @property
    def webhook(self) -> str:
        return f"{self.exporter.url}/webhook"

    @property
    def scraped(self) -> tuple[Loopback, ...]:
        """The exporters Prometheus scrapes: the replicas, or the one exporter."""
        return self.replicas or (self.exporter,)


@dataclass(frozen=True)
class Simulation:
    """One run of `python -m exporter simulate`."""

    args: tuple[str, ...]  # besides --target and --speed
    returncode: int
    stdout: str
    log: str

    @property
    def calls(self) -> dict[tuple[str, str], int]:
        """Calls per (direction, outcome) from the printed summary."""
        return parse_summary(self.stdout)

    @property
    def callbacks(self) -> dict[str, int]:
        """Callback debts settled by result, and those still owed, from the summary."""
        return parse_callbacks(self.stdout)

    def __str__(self) -> str:
        return (
            f"simulate {' '.join(self.args)} -> exit {self.returncode}\n{self.stdout}\n{self.log}"
        )


@dataclass(frozen=True)
class StackRun:
    """What the fixture set up and saw; the stack keeps running until the module ends."""

    prometheus: str
    alertmanager: str
    exporter: str  # the `instance` regex that matches every exporter scraped
    normal: Simulation
    burst: Simulation
    spike_series_in_normal_period: list[dict[str, Any]]
    spike_alert: dict[str, Any] | None  # the one of SPIKE_LINE
    spike_diagnostics: str
    ended: dict[tuple[str, str], int]
    settled_at: float  # Unix time when every call had ended; dashboard queries run at it


# --- the scaled configuration ------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    """Parse a YAML file."""
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def write_yaml(path: Path, document: Any) -> None:
    """Write a YAML file, multi-line strings (PromQL) as literal blocks for readable diffs."""

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(document, Dumper=Dumper, sort_keys=False), encoding="utf-8")


def shipped_rule_files() -> list[Path]:
    """The rule files prometheus.yml loads, resolved like Prometheus does (globs included)."""
    patterns = load_yaml(PROMETHEUS_CONFIG).get("rule_files", [])
    return sorted({path for pattern in patterns for path in REPO.glob(pattern)})


def write_scaled_rules(directory: Path) -> list[Path]:
    """Write every shipped rule file, time-scaled, at the same relative path under directory."""
    written = []
    for path in shipped_rule_files():
        target = directory / path.relative_to(REPO)
        write_yaml(target, scale_rule_file(load_yaml(path), SCALE))
        written.append(target)
    return written


def write_stack_config(directory: Path, ports: Ports) -> Path:
    """Write prometheus.yml and its scaled rules for the test stack; return the config path."""
    # The shipped targets are the compose service names (see the comment in prometheus.yml).
    replicas: dict[str, str | None] = {f"exporter-{number}:9850": None for number in (1, 2)}
    replicas.update(
        (f"exporter-{number}:9850", replica.address)
        for number, replica in enumerate(ports.replicas, start=1)
    )
    addresses = {
        "exporter:9850": None if ports.replicas else ports.exporter.address,
        **replicas,
        "localhost:9090": ports.prometheus.address,
        "alertmanager:9093": ports.alertmanager.address,
    }
    write_scaled_rules(directory)
    config = directory / "prometheus.yml"
    write_yaml(config, rewrite_prometheus_config(load_yaml(PROMETHEUS_CONFIG), addresses, INTERVAL))
    return config


def write_exporter_config(path: Path) -> Path:
    """Write the exporter's configuration file (lines, teams, per-user statistics)."""
    document = {
        "lines": LINES,
        "teams": TEAMS,
        "per_user": {"enabled": True, "users": list(STAFF)},
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def check_tool(*argv: str) -> None:
    """Run promtool or amtool and fail with its output unless it exits 0."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}{result.stderr}"


# --- running the stack -------------------------------------------------------------------------


@dataclass(frozen=True)
class StackSetup:
    """Where the test stack runs and what it shares."""

    ports: Ports
    workdir: Path
    private_key: Path  # the simulator signs webhooks with it
    public_key: Path  # the exporter verifies them with it


def start_simulator(args: Sequence[str], setup: StackSetup, log: Path) -> subprocess.Popen[str]:
    """Start the simulator CLI against the exporter; its progress lines go to log."""
    argv = [sys.executable, "-m", "exporter", "simulate", "--target", setup.ports.webhook]
    argv += ["--sign-key", str(setup.private_key), "--speed", str(SCALE)]
    argv += ["--progress-interval", "5s", *args]
    with log.open("w", encoding="utf-8") as stream:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stream, text=True, cwd=REPO)


def finish_simulator(process: subprocess.Popen[str], args: Sequence[str], log: Path) -> Simulation:
    """Wait for a simulator started with args to exit and collect what it printed."""
    try:
        stdout, _ = process.communicate(timeout=SIMULATOR_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail(f"the simulator ran longer than {SIMULATOR_TIMEOUT:g}s:\n{log.read_text()}")
    return Simulation(tuple(args), process.returncode, stdout, log.read_text(encoding="utf-8"))


def simulate(args: Sequence[str], setup: StackSetup, log: Path) -> Simulation:
    """Run the simulator to its end."""
    process = start_simulator(args, setup, log)
    try:
        return finish_simulator(process, args, log)
    finally:
        stop(process)


def spike_in_alertmanager(alertmanager: str, line: str) -> dict[str, Any] | None:
    """The active SipgateMissedCallSpike alert of a line as Alertmanager shows it, if any."""
    alerts: list[dict[str, Any]] = get_json(f"{alertmanager}/api/v2/alerts")
    return next(
        (
            alert
            for alert in alerts
            if alert["labels"].get("alertname") == SPIKE
            and alert["labels"].get("line") == line
            and alert["status"]["state"] == "active"
        ),
        None,
    )


def spike_diagnostics(prometheus: str) -> str:
    """The series the spike alert is built from, for a failure message."""
    lines = []
    for expr in (
        'direction_line:sipgate_calls_unanswered:ratio15m{direction="in"}',
        'direction_line:sipgate_calls_unanswered:ratio1d{direction="in"}',
        'direction_line:sipgate_calls_ended_not_expired:increase15m{direction="in"}',
        f'ALERTS{{alertname="{SPIKE}"}}',
    ):
        lines.append(f"{expr} = {prometheus_query(prometheus, expr).get('data')}")
    return "\n".join(lines)


def ended_calls(prometheus: str) -> dict[tuple[str, str], int]:
    """sipgate_calls_ended_total per (direction, outcome), zeros left out."""
    result = query_vector(
        prometheus, 'sum by (direction, outcome) (sipgate_calls_ended_total{job="sipgate"})'
    )
    counts = {(s["metric"]["direction"], s["metric"]["outcome"]): s["value"][1] for s in result}
    return {key: int(float(value)) for key, value in counts.items() if float(value)}


def all_calls_ended(prometheus: str, expected: int) -> bool:
    """Tell whether Prometheus saw every call end: none active, the ended counter complete."""
    active = query_scalar(prometheus, 'sum(sipgate_calls_active{job="sipgate"})')
    ended = query_scalar(prometheus, 'sum(sipgate_calls_ended_total{job="sipgate"})')
    return active == 0 and ended == expected


def start_services(
    running: contextlib.ExitStack, setup: StackSetup, config: Path, state_url: str | None
) -> list[Service]:
    """Start the exporter (or, with `state_url`, two replicas behind haproxy), Alertmanager and
    Prometheus; they stop when `running` closes."""
    ports, workdir = setup.ports, setup.workdir
    prometheus = binary("prometheus", package="prometheus")
    alertmanager = binary(
        "prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager"
    )
    exporter = [
        sys.executable,
        "-m",
        "exporter",
        "--calls.forward-grace=1s",
        f"--calls.service-level-target={SERVICE_LEVEL_TARGET}",
        f"--calls.short-abandon={SHORT_ABANDON}",
        f"--webhook.signature-key={setup.public_key}",
        f"--config.file={write_exporter_config(workdir / 'exporter.yml')}",
    ]
    if state_url is None:
        exporters = {
            "exporter": [
                *exporter,
                f"--web.listen-address={ports.exporter.address}",
                f"--state.path={workdir / 'exporter-state.db'}",
            ]
        }
    else:
        exporters = {
            f"exporter-{number}": [
                *exporter,
                f"--web.listen-address={replica.address}",
                f"--state.url={state_url}",
                f"--state.replica=exporter-{number}",
            ]
            for number, replica in enumerate(ports.replicas, start=1)
        }
    commands = {
        **exporters,
        "alertmanager": [
            alertmanager,
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address={ports.alertmanager.address}",
            "--cluster.listen-address=",  # no clustering: no gossip port
        ],
        "prometheus": [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address={ports.prometheus.address}",
        ],
    }
    services = [
        running.enter_context(service(name, argv, workdir, REPO)) for name, argv in commands.items()
    ]
    if ports.replicas:
        servers = [int(replica.address.rpartition(":")[2]) for replica in ports.replicas]
        port = int(ports.exporter.address.rpartition(":")[2])
        running.enter_context(running_haproxy(workdir, port, servers))
    return services


def wait_until_up(ports: Ports, services: Sequence[Service]) -> None:
    """Wait until all three are ready, Prometheus scraped the exporter and found Alertmanager."""
    prometheus = ports.prometheus.url
    for url in (ports.exporter.url, ports.alertmanager.url, prometheus):
        wait_for(partial(is_ready, url), 30, f"{url}/-/ready", alive=services)
    # Prometheus 2.42 scrapes for the first time about 5 s after it starts.
    up = 'sum(up{job="sipgate"})'
    wait_for(
        lambda: query_scalar(prometheus, up) == len(ports.scraped),
        30,
        "Prometheus to scrape every exporter",
        alive=services,
    )
    wait_for(
        lambda: get_json(f"{prometheus}/api/v1/alertmanagers")["data"]["activeAlertmanagers"],
        30,
        "Prometheus to find Alertmanager",
        alive=services,
    )


@pytest.fixture(scope="module", params=[1, 2], ids=["one exporter", "two replicas"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackRun]:
    """Bring the stack up, run the normal period and the burst, record what happened: with one
    exporter, and with two replicas sharing PostgreSQL behind haproxy."""
    workdir = tmp_path_factory.mktemp("stack")
    state_url = None
    if request.param > 1:
        cluster: Cluster = request.getfixturevalue("postgres")
        state_url = cluster.url_for(cluster.create_database())
    ports = Ports.pick(replicas=request.param if state_url else 0)
    prometheus, alertmanager = ports.prometheus.url, ports.alertmanager.url
    config = write_stack_config(workdir / "config", ports)
    check_tool(binary("promtool", package="prometheus"), "check", "config", str(config))
    setup = StackSetup(ports, workdir, *write_key_pair(workdir))
    with contextlib.ExitStack() as running:
        services = start_services(running, setup, config, state_url)
        wait_until_up(ports, services)

        normal_start = time.time()
        normal = simulate(NORMAL, setup, workdir / "simulate-normal.log")
        normal_end = time.time()
        wait_for(
            partial(rule_evaluated_after, prometheus, normal_end),
            10,
            "a rule evaluation after the normal period",
            alive=services,
        )
        window = math.ceil(time.time() - normal_start)
        in_normal = query_vector(prometheus, f'ALERTS{{alertname="{SPIKE}"}}[{window}s]')

        burst_log = workdir / "simulate-burst.log"
        burst_process = start_simulator(BURST, setup, burst_log)
        running.callback(stop, burst_process)
        alert = poll(
            partial(spike_in_alertmanager, alertmanager, SPIKE_LINE), SPIKE_DEADLINE, 0.5, services
        )
        diagnostics = "" if alert else spike_diagnostics(prometheus)
        burst = finish_simulator(burst_process, BURST, burst_log)

        sent = sum(normal.calls.values()) + sum(burst.calls.values())
        poll(partial(all_calls_ended, prometheus, sent), SETTLE_TIMEOUT, alive=services)
        yield StackRun(
            prometheus=prometheus,
            alertmanager=alertmanager,
            exporter="|".join(scraped.address for scraped in ports.scraped),
            normal=normal,
            burst=burst,
            spike_series_in_normal_period=in_normal,
            spike_alert=alert,
            spike_diagnostics=diagnostics,
            ended=ended_calls(prometheus),
            settled_at=time.time(),
        )


# --- the time-scaling transform ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("shipped", "scaled"),
    [
        ("15m", "15s"),
        ("1h", "1m"),
        ("1d", "24m"),
        ("1w", "2h48m"),
        ("5m", "5s"),
        ("30m", "30s"),
        ("1h30m", "1m30s"),
        ("1m", "1s"),
        ("30s", "500ms"),
    ],
)
def test_scale_duration(shipped: str, scaled: str) -> None:
    assert scale_duration(shipped, SCALE) == scaled
    assert parse_duration_ms(scaled) * SCALE == parse_duration_ms(shipped)


def test_scale_duration_refuses_what_does_not_divide() -> None:
    with pytest.raises(ValueError, match="whole number"):
        scale_duration("1ms", SCALE)
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        scale_duration("15 minutes", SCALE)
    assert format_duration_ms(0) == "0s"


def test_scale_promql_changes_only_durations() -> None:
    expr = (
        "sum(increase(sipgate_calls_total[30m] offset 1w)) >= 5 and "
        "max_over_time(direction:sipgate_calls_unanswered:ratio1d[1h:5m]) > 0.2 "
        "and rate(x[ 15m ]) and y offset -1d and deriv(z[1h:])"
    )
    assert scale_promql(expr, SCALE) == (
        "sum(increase(sipgate_calls_total[30s] offset 2h48m)) >= 5 and "
        "max_over_time(direction:sipgate_calls_unanswered:ratio1d[1m:5s]) > 0.2 "
        "and rate(x[15s]) and y offset -24m and deriv(z[1m:])"
    )


def test_scale_rule_file_scales_every_duration_field() -> None:
    rule = {
        "alert": "X",
        "expr": "rate(x[5m]) > 0.5",
        "for": "10m",
        "keep_firing_for": "1h",
        "labels": {"severity": "warning", "window": "[5m]"},
        "annotations": {"description": '{{ with query "sum(x[1h])" }}{{ . }}{{ end }} in 1h'},
    }
    document = {"groups": [{"name": "g", "interval": "2m", "rules": [rule]}]}
    scaled = scale_rule_file(document, SCALE)
    assert scaled == {
        "groups": [
            {
                "name": "g",
                "interval": "2s",
                "rules": [
                    {
                        **rule,
                        "expr": "rate(x[5s]) > 0.5",
                        "for": "10s",
                        "keep_firing_for": "1m",
                        "annotations": {
                            "description": '{{ with query "sum(x[1m])" }}{{ . }}{{ end }} in 1h'
                        },
                    }
                ],
            }
        ]
    }
    assert document["groups"][0]["interval"] == "2m", "the input is left alone"


@pytest.mark.parametrize("path", shipped_rule_files(), ids=lambda path: path.name)
def test_scaling_changes_only_durations(path: Path) -> None:
    shipped = load_yaml(path)
    scaled = scale_rule_file(shipped, SCALE)
    for group, scaled_group in zip(shipped["groups"], scaled["groups"], strict=True):
        for rule, new in zip(group["rules"], scaled_group["rules"], strict=True):
            assert set(rule) == set(new)
            assert rule.get("labels") == new.get("labels")
            if "for" in rule:
                assert parse_duration_ms(new["for"]) * SCALE == parse_duration_ms(rule["for"])
            assert _blank_durations(new["expr"]) == _blank_durations(rule["expr"])
            assert [ms * SCALE for ms in _durations(new["expr"])] == _durations(rule["expr"])
            for name, text in rule.get("annotations", {}).items():
                assert _blank_durations(new["annotations"][name]) == _blank_durations(text)


def _durations(expr: str) -> list[int]:
    """Every range, subquery step and offset duration in expr, in milliseconds, in order."""
    found = re.findall(
        r"\[\s*([\dywdhms]+)\s*(?::\s*([\dywdhms]*))?\]|offset\s+-?([\dywdhms]+)", expr
    )
    return [parse_duration_ms(text) for group in found for text in group if text]


def _blank_durations(expr: str) -> str:
    """expr with every range and offset duration taken out."""
    expr = re.sub(r"\[[^\]:]*(:[^\]]*)?\]", "[]", expr)
    return re.sub(r"\boffset\s+-?[\dywdhms]+", "offset", expr)


def test_scaled_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = binary("promtool", package="prometheus")
    written = write_scaled_rules(tmp_path)
    assert written, "prometheus.yml loads no rule files"
    check_tool(promtool, "check", "rules", *map(str, written))


def test_config_rewrite_keeps_the_structure() -> None:
    shipped = load_yaml(PROMETHEUS_CONFIG)
    addresses: dict[str, str | None] = {
        "exporter:9850": "127.0.0.1:1",
        "exporter-1:9850": None,
        "exporter-2:9850": None,
        "localhost:9090": "127.0.0.1:2",
        "alertmanager:9093": "127.0.0.1:3",
    }
    config = rewrite_prometheus_config(shipped, addresses, INTERVAL)
    assert config["rule_files"] == shipped["rule_files"]
    assert [j["job_name"] for j in config["scrape_configs"]] == [
        j["job_name"] for j in shipped["scrape_configs"]
    ]
    sipgate = next(j for j in config["scrape_configs"] if j["job_name"] == "sipgate")
    assert sipgate["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
    assert "dns_sd_configs" not in sipgate
    replicas = addresses | {
        "exporter:9850": None,
        "exporter-1:9850": "127.0.0.1:4",
        "exporter-2:9850": "127.0.0.1:5",
    }
    config = rewrite_prometheus_config(shipped, replicas, INTERVAL)
    sipgate = next(j for j in config["scrape_configs"] if j["job_name"] == "sipgate")
    assert sipgate["static_configs"] == [{"targets": ["127.0.0.1:4", "127.0.0.1:5"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:3"]
    assert config["global"]["evaluation_interval"] == INTERVAL
    with pytest.raises(KeyError, match="exporter:9850"):
        rewrite_prometheus_config(shipped, {}, INTERVAL)


# --- the stack ----------------------------------------------------------------------------------


def test_simulator_runs_succeed(stack: StackRun) -> None:
    for run in (stack.normal, stack.burst):
        assert run.returncode == 0, str(run)
        assert "errors: none" in run.stdout, str(run)
        assert "interrupted" not in run.stdout, str(run)
    assert stack.normal.calls.get(("in", "answered"), 0) > 0
    answered = {key: n for key, n in stack.burst.calls.items() if key[1] == "answered"}
    assert not answered, f"the burst should have no answered calls: {stack.burst}"


def test_spike_alert_quiet_in_normal_period(stack: StackRun) -> None:
    assert stack.spike_series_in_normal_period == [], (
        f"{SPIKE} was pending or firing during the normal period: "
        f"{stack.spike_series_in_normal_period}"
    )


def test_spike_alert_reaches_alertmanager(stack: StackRun) -> None:
    alert = stack.spike_alert
    assert alert is not None, (
        f"{SPIKE} did not reach Alertmanager within {SPIKE_DEADLINE:g}s of the burst:\n"
        f"{stack.spike_diagnostics}"
    )
    rule = next(
        rule
        for path in shipped_rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if rule.get("alert") == SPIKE
    )
    assert alert["labels"] == {
        "alertname": SPIKE,
        "direction": "in",
        "line": SPIKE_LINE,
        **rule["labels"],
    }
    annotations = alert["annotations"]
    for key in ("summary", "runbook_url"):
        assert annotations[key] == rule["annotations"][key]
    # The description starts with the templated share; the rest is the shipped text, with the
    # line filled in.
    shipped = rule["annotations"]["description"]
    named = re.sub(
        r"\{\{ with \$labels\.line \}\}(.*?)\{\{ \. \}\}\{\{ end \}\}",
        r"\g<1>" + SPIKE_LINE,
        shipped,
    )
    assert named != shipped, "the description no longer names the line"
    rest = named.split("}}", 1)[1]
    description = annotations["description"]
    assert description.endswith(rest), description
    assert f"to line {SPIKE_LINE} " in description, description
    assert description.split(" ", 1)[0].endswith("%"), description


def test_calls_ended_match_the_simulator_summary(stack: StackRun) -> None:
    sent: dict[tuple[str, str], int] = {}
    for run in (stack.normal, stack.burst):
        for key, count in run.calls.items():
            sent[key] = sent.get(key, 0) + count
    assert stack.ended == sent


def dashboard_query_problem(stack: StackRun, query: PanelQuery) -> str | None:
    """Why a dashboard query shows nothing at the end of the run; None when it shows data."""
    body = prometheus_query(stack.prometheus, query.expr, stack.settled_at)
    if body.get("status") != "success":
        return f"{query.panel!r} {query.ref_id}: {body.get('error')}"
    if not body["data"]["result"]:
        return f"{query.panel!r} {query.ref_id}: no data\n    {query.expr}"
    if body["data"]["resultType"] == "vector" and not has_number(body["data"]["result"]):
        return f"{query.panel!r} {query.ref_id}: only NaN\n    {query.expr}"
    return None


def test_every_dashboard_query_returns_data(stack: StackRun) -> None:
    # The service level stat has two queries, of which one holds the value (target met) and the
    # other nothing: a query compared with the target must show data for some target.
    targets = ("0", "2")
    variants = [
        panel_queries({"instance": stack.exporter, "service_level_target": target})
        for target in targets
    ]
    assert variants[0]
    failures = []
    for alternatives in zip(*variants, strict=True):
        problems = [dashboard_query_problem(stack, query) for query in dict.fromkeys(alternatives)]
        if all(problems):
            failures.append(str(problems[0]))
    assert not failures, "panels without data:\n" + "\n".join(failures)


def test_busy_hours_add_up_to_the_calls_offered(stack: StackRun) -> None:
    # A bar counts the calls of one clock hour once the hour is over: an hour after the run,
    # with a day's range, the bars add up to every call offered.
    queries = [
        query
        for query in panel_queries({"instance": stack.exporter, "__range": "1d"})
        if query.panel.startswith("Busy hours")
    ]
    assert len(queries) == 24
    bars = [query_scalar(stack.prometheus, q.expr, stack.settled_at + 3600) for q in queries]
    offered = query_scalar(
        stack.prometheus, 'sum(sipgate_calls_offered_total{job="sipgate"})', stack.settled_at
    )
    assert offered
    assert sum(bar or 0 for bar in bars) == pytest.approx(offered, rel=0.05), bars


def test_service_level_counters_add_up(stack: StackRun) -> None:
    def by_line(metric: str, matchers: str = "") -> dict[str, float]:
        expr = f'sum by (line) ({metric}{{job="sipgate", direction="in"{matchers}}})'
        result = query_vector(stack.prometheus, expr, stack.settled_at)
        return {sample["metric"]["line"]: float(sample["value"][1]) for sample in result}

    offered = by_line("sipgate_calls_offered_total")
    short = by_line("sipgate_calls_short_abandoned_total")
    abandoned = by_line("sipgate_calls_abandoned_total")
    in_target = by_line("sipgate_calls_answered_in_target_total")
    unnamed = by_line("sipgate_calls_answered_unnamed_total")
    ended = by_line("sipgate_calls_ended_total", ', outcome!="expired"')
    missed = by_line("sipgate_calls_ended_total", ', outcome="missed"')
    answered = by_line("sipgate_calls_ended_total", ', outcome="answered"')
    for line in ended:
        assert offered[line] + short[line] == ended[line], line
        assert abandoned[line] + short[line] == missed[line], line
        assert in_target[line] <= answered[line], line
        assert unnamed[line] <= answered[line], line
    # Every case of the simulator shows: short abandons, slow and unnamed answers.
    assert sum(short.values()) > 0
    assert sum(abandoned.values()) > 0
    assert 0 < sum(in_target.values()) < sum(answered.values())
    assert sum(unnamed.values()) > 0


def test_callbacks_match_the_simulator_summary(stack: StackRun) -> None:
    sent: Counter[str] = Counter()
    for run in (stack.normal, stack.burst):
        sent.update(run.callbacks)
    assert sent["called_back"] > 0, str(stack.normal)
    assert sent["called_again"] > 0, str(stack.normal)
    results = sums_by(stack.prometheus, "sipgate_callbacks_total", "result", stack.settled_at)
    assert results == {
        "called_back": sent["called_back"],
        "called_again": sent["called_again"],
        "expired": 0,
    }
    pending = query_scalar(
        stack.prometheus, 'sum(sipgate_callbacks_pending{job="sipgate"})', stack.settled_at
    )
    assert pending == sent["still_owed"]


def test_calls_are_counted_per_configured_line(stack: StackRun) -> None:
    started = sums_by(stack.prometheus, "sipgate_calls_total", "line", stack.settled_at)
    assert set(started) == {*LINES.values(), "other"}
    assert started["other"] == 0, "every number of the simulator is configured"
    assert started["support"] > 0
    assert started["sales"] > 0
    assert sum(started.values()) == sum(stack.ended.values())
    ended = sums_by(stack.prometheus, "sipgate_calls_ended_total", "line", stack.settled_at)
    assert ended == started


def test_answered_calls_and_talk_time_per_team(stack: StackRun) -> None:
    answered = sums_by(
        stack.prometheus, "sipgate_team_calls_answered_total", "team", stack.settled_at
    )
    assert set(answered) == TEAMS_WITH_OTHER
    assert all(count > 0 for count in answered.values()), answered  # Doc answers as "other"
    assert sum(answered.values()) == stack.ended[("in", "answered")]
    talk = sums_by(stack.prometheus, "sipgate_team_talk_seconds_total", "team", stack.settled_at)
    assert set(talk) == TEAMS_WITH_OTHER
    # Calls answered by no named user count for team other, and as answered_by="unnamed".
    person = query_scalar(
        stack.prometheus,
        'sum(sipgate_call_duration_seconds_sum{job="sipgate", direction="in", '
        'answered_by=~"person|unnamed"})',
        stack.settled_at,
    )
    assert person is not None
    assert person > 0
    assert sum(talk.values()) == pytest.approx(person, rel=1e-6)


def test_outgoing_calls_per_team(stack: StackRun) -> None:
    outgoing = sums_by(
        stack.prometheus, "sipgate_team_outgoing_calls_total", "team", stack.settled_at
    )
    assert set(outgoing) == TEAMS_WITH_OTHER
    sent = sum(count for (direction, _), count in stack.ended.items() if direction == "out")
    assert sent > 0
    assert sum(outgoing.values()) == sent


def test_per_user_statistics_add_up_to_the_teams(stack: StackRun) -> None:
    for user_metric, team_metric in (
        ("sipgate_user_calls_answered_total", "sipgate_team_calls_answered_total"),
        ("sipgate_user_talk_seconds_total", "sipgate_team_talk_seconds_total"),
        ("sipgate_user_outgoing_calls_total", "sipgate_team_outgoing_calls_total"),
    ):
        users = sums_by(stack.prometheus, user_metric, "user", stack.settled_at)
        teams = sums_by(stack.prometheus, team_metric, "team", stack.settled_at)
        # Calls answered by no named user (a queue, a pickup) count for user other.
        assert set(STAFF) <= set(users) <= {*STAFF, "other"}, user_metric
        assert sum(users.values()) == pytest.approx(sum(teams.values()), rel=1e-6), user_metric


def test_no_label_value_overflowed(stack: StackRun) -> None:
    overflow = sums_by(
        stack.prometheus, "sipgate_label_values_overflow_total", "label", stack.settled_at
    )
    assert set(overflow) == {"line", "team", "user"}
    assert sum(overflow.values()) == 0
