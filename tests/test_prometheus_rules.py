"""Check prometheus.yml, the rule files, their unit tests, alertmanager.yml and the runbook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL_PREFIX = "https://github.com/OWNER/sipgate-exporter/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}
# Debian 12's tools on the PATH, and the current release fetched by .ci/current-prometheus-tools.
RELEASES = ("debian-12", "current")
CURRENT_TOOLS = REPO / ".cache" / "prometheus-current" / "usr" / "bin"


def _tool(name: str, package: str, release: str = "debian-12") -> str:
    """Return the path of a command-line tool; $PROMTOOL / $AMTOOL override the PATH."""
    if release == "current":
        current = CURRENT_TOOLS / name
        if not current.is_file():
            pytest.fail(f"{current} not found: run .ci/current-prometheus-tools (make test does)")
        return str(current)
    wanted = os.environ.get(name.upper(), name)
    path = shutil.which(wanted)
    if path is None:
        pytest.fail(
            f"{name} ({wanted}) not found: apt-get install -y {package} (Debian package), "
            f"or set ${name.upper()} to the binary"
        )
    return path


def _run(*args: str) -> None:
    """Run a command in the repository and fail with its output unless it exits 0."""
    result = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output}"


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _alerts() -> list[dict[str, Any]]:
    """Every alerting rule of every rule file."""
    return [
        rule
        for path in RULE_FILES
        for group in _load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a Markdown text."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_rule_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    assert RULE_TEST_FILES, f"no promtool unit tests in {RULES_DIR / 'tests'}"


@pytest.mark.parametrize("release", RELEASES)
def test_prometheus_config_is_valid(release: str) -> None:
    _run(_tool("promtool", "prometheus", release), "check", "config", "prometheus.yml")


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda path: path.name)
def test_rule_file_is_valid(path: Path, release: str) -> None:
    _run(_tool("promtool", "prometheus", release), "check", "rules", str(path.relative_to(REPO)))


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda path: path.name)
def test_rule_unit_tests_pass(path: Path, release: str) -> None:
    _run(_tool("promtool", "prometheus", release), "test", "rules", str(path.relative_to(REPO)))


@pytest.mark.parametrize("release", RELEASES)
def test_alertmanager_config_is_valid(release: str) -> None:
    _run(
        _tool("amtool", "prometheus-alertmanager", release),
        "check-config",
        str(ALERTMANAGER_CONFIG.relative_to(REPO)),
    )


def test_every_alert_is_documented() -> None:
    anchors = _github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    alerts = _alerts()
    assert alerts, "no alerting rules found"
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"Sipgate[A-Z][A-Za-z]+", name), f"{name}: not CamelCase Sipgate…"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: no {key} annotation"
        url = annotations["runbook_url"]
        assert url.startswith(RUNBOOK_URL_PREFIX), f"{name}: runbook_url {url}"
        anchor = url.removeprefix(RUNBOOK_URL_PREFIX)
        assert anchor == name.lower(), f"{name}: runbook_url points at #{anchor}"
        assert anchor in anchors, f"{name}: docs/runbook.md has no section #{anchor}"


def test_every_alert_has_a_unit_test_that_fires() -> None:
    fired = {
        case["alertname"]
        for path in RULE_TEST_FILES
        for test in _load(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    missing = {rule["alert"] for rule in _alerts()} - fired
    assert not missing, f"alerts without a promtool test that expects them to fire: {missing}"


def _recorded_names() -> set[str]:
    """The names of every recording rule."""
    return {
        rule["record"]
        for path in RULE_FILES
        for group in _load(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


@pytest.mark.parametrize(
    "name", ["SipgateMissedCallSpike", "SipgateMissedCallRatioHigh", "SipgateServiceLevelLow"]
)
def test_call_alerts_fire_per_line(name: str) -> None:
    rule = next(rule for rule in _alerts() if rule["alert"] == name)
    recorded = _recorded_names()
    used = {token for token in re.findall(r"[a-zA-Z_:][\w:]*", rule["expr"]) if token in recorded}
    calls = {token for token in used if "sipgate_calls" in token}
    assert calls, f"{name} uses no recorded call series"
    # level:metric:operations; the level names the labels the series keeps.
    not_per_line = sorted(t for t in calls if "line" not in t.split(":")[0].split("_"))
    assert not not_per_line, f"{name} uses series summed over all lines: {not_per_line}"
    assert "$labels.line" in rule["annotations"]["description"], f"{name}: name the line"


def test_per_line_recording_rules_keep_line_and_direction() -> None:
    rules = [
        rule
        for group in _load(RULES_DIR / "sipgate.rules.yml")["groups"]
        for rule in group["rules"]
        if rule.get("record", "").startswith("direction_line")
    ]
    assert {r["record"].rsplit(":", 1)[1] for r in rules} >= {"ratio15m", "ratio1h", "ratio1d"}
    for rule in rules:
        for by in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]):
            labels = {label.strip() for label in by.split(",")}
            assert {"direction", "line"} <= labels, f"{rule['record']}: sum by ({by})"


# The service-level recording rules of issue 14, written out: their names are a contract.
SERVICE_LEVEL_RULES = (
    "direction_line:sipgate_calls_service_level:ratio1h",
    "direction:sipgate_calls_service_level:ratio1h",
    "direction_line:sipgate_calls_abandoned:ratio1h",
    "direction:sipgate_calls_abandoned:ratio1h",
    "direction_line:sipgate_call_answer_speed_seconds:avg1h",
    "direction:sipgate_call_answer_speed_seconds:avg1h",
    "direction_line:sipgate_calls_service_level:ratio1d",
    "direction:sipgate_calls_service_level:ratio1d",
    "direction_line:sipgate_calls_abandoned:ratio1d",
    "direction:sipgate_calls_abandoned:ratio1d",
    "direction_line:sipgate_call_answer_speed_seconds:avg1d",
    "direction:sipgate_call_answer_speed_seconds:avg1d",
)
SERVICE_LEVEL_GROUPS = ("sipgate-service-level.rules", "sipgate-thresholds.rules")


def _group_rules(*names: str) -> list[dict[str, Any]]:
    """The rules of the named groups of sipgate.rules.yml."""
    groups = _load(RULES_DIR / "sipgate.rules.yml")["groups"]
    return [rule for group in groups if group["name"] in names for rule in group["rules"]]


def _expected_samples() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every promql_expr_test of the unit tests: its expression and expected samples."""
    return [
        (case["expr"], case.get("exp_samples") or [])
        for path in RULE_TEST_FILES
        for test in _load(path)["tests"]
        for case in test.get("promql_expr_test", [])
    ]


def test_service_level_rules_are_recorded() -> None:
    recorded = [rule["record"] for rule in _group_rules("sipgate-service-level.rules")]
    for name in SERVICE_LEVEL_RULES:
        assert recorded.count(name) == 1, f"{name}: recorded {recorded.count(name)} times"


def test_service_level_rules_count_incoming_calls_only() -> None:
    """Every selector of a raw exporter metric in the group asks for direction="in"."""
    metrics = set()
    for rule in _group_rules("sipgate-service-level.rules"):
        selectors = re.findall(r"(?<![\w:])(sipgate_\w+)\s*(\{[^}]*\})?", rule["expr"])
        for metric, matchers in selectors:
            assert 'direction="in"' in matchers, f"{rule['record']}: {metric}{matchers}"
            metrics.add(metric)
    assert metrics >= {
        "sipgate_calls_offered_total",
        "sipgate_calls_answered_in_target_total",
        "sipgate_calls_abandoned_total",
        "sipgate_call_wait_seconds_sum",
        "sipgate_call_wait_seconds_count",
    }, metrics


@pytest.mark.parametrize(
    "name",
    [rule["record"] for rule in _group_rules(*SERVICE_LEVEL_GROUPS)],
)
def test_service_level_rule_has_a_unit_test_with_values(name: str) -> None:
    """Each rule is evaluated by a promtool test that expects samples with their labels."""
    expected = [
        samples for expr, samples in _expected_samples() if re.match(rf"{name}\b(?!:)", expr)
    ]
    labelled = [sample["labels"] for samples in expected for sample in samples]
    assert labelled, f"{name}: no promtool test expects a value"
    if name.startswith("direction"):
        assert all('direction="in"' in labels for labels in labelled), f"{name}: {labelled}"
    if name.startswith("direction_line"):
        assert all("line=" in labels for labels in labelled), f"{name}: {labelled}"


def test_callbacks_alert_sums_instances_per_line() -> None:
    rule = next(rule for rule in _alerts() if rule["alert"] == "SipgateCallbacksPiling")
    assert re.search(r"\bsum by \(line\) \(sipgate_callbacks_pending\)", rule["expr"])
    assert "sipgate:callbacks_pending:threshold" in rule["expr"]
    assert "$labels.line" in rule["annotations"]["description"], "name the line"
