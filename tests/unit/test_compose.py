"""compose.yaml, the Dockerfile and what they mount, checked offline (no Docker engine).

The Compose specification's JSON schema is vendored in tests/schemas/ (see its README).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import stat
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from broker import conf

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYTHON_SERVICES = ("broker-init", "aggregator", "devices")
LONG_RUNNING = ("mosquitto", "aggregator", "devices", "prometheus", "grafana")


def _schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((ROOT / "tests/schemas/compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the defaults, ``$$`` as ``$``."""
    value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)
    return value.replace("$$", "$")


def _mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of a service's short-syntax volumes."""
    out = []
    for entry in SERVICES[service].get("volumes", []):
        source, target, *_ = entry.split(":")
        out.append((source, target))
    return out


def _env(service: str) -> dict[str, str]:
    return {k: _interpolate(str(v)) for k, v in SERVICES[service].get("environment", {}).items()}


def _host_path(service: str, container_path: str) -> tuple[str, PurePosixPath]:
    """(bind source or volume name, path inside it) that holds ``container_path``."""
    path = PurePosixPath(container_path)
    for source, target in sorted(_mounts(service), key=lambda m: -len(m[1])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source, path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {service}")


def test_compose_file_validates_against_the_compose_specification() -> None:
    validator = _schema_validator()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    assert "version" not in COMPOSE  # the current spec ignores it; Compose v2 warns


def test_schema_catches_mistakes() -> None:
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["aggregator"]["depends_on"]["mosquitto"]["condition"] = "healthy"
    broken["services"]["devices"]["helthcheck"] = {}
    assert len(list(_schema_validator().iter_errors(broken))) >= 2


def test_services_and_images() -> None:
    assert set(LONG_RUNNING) | {"broker-init"} == set(SERVICES)
    assert SERVICES["mosquitto"]["image"] == "eclipse-mosquitto:2"
    for name in PYTHON_SERVICES:
        assert SERVICES[name]["build"] == "."
    assert SERVICES["aggregator"]["command"] == ["aggregator"]
    assert SERVICES["devices"]["command"] == ["devices"]
    assert "container_name" not in SERVICES["devices"]  # scalable: --scale devices=N
    assert not any("ports" in SERVICES[name] for name in ("devices", "aggregator"))


def test_every_mounted_file_exists_and_named_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    used = set()
    for name in SERVICES:
        for source, _ in _mounts(name):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared
    assert {"broker-data", "aggregator-state"} <= declared


def test_dependencies_wait_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert SERVICES[dep]["restart"] == "no"
    for name in LONG_RUNNING:
        assert "test" in SERVICES[name]["healthcheck"], name
    assert SERVICES["mosquitto"]["depends_on"]["broker-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert SERVICES["aggregator"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    assert SERVICES["devices"]["depends_on"]["aggregator"]["condition"] == "service_healthy"
    assert SERVICES["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_python_services_are_configured_through_fedmq_environment_variables() -> None:
    aggregator, devices = _env("aggregator"), _env("devices")
    for key in ("BROKER", "TASK", "STATE_DIR", "METRICS_PORT", "MODE", "BUFFER", "STALENESS"):
        assert f"FEDMQ_{key}" in aggregator
    for key in ("BROKER", "TASK", "COUNT", "TIME_SCALE", "METRICS_PORT"):
        assert f"FEDMQ_{key}" in devices
    assert _host_path("aggregator", aggregator["FEDMQ_STATE_DIR"])[0] == "aggregator-state"


@pytest.mark.parametrize(
    ("service", "subcommand"), [("aggregator", "aggregator.cli"), ("devices", "device_sim.cli")]
)
def test_every_fedmq_variable_is_an_option_of_the_subcommand(service: str, subcommand: str) -> None:
    module = importlib.import_module(subcommand)
    import argparse

    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    sub = next(iter(parser._subparsers._group_actions[0].choices.values()))  # type: ignore[union-attr]
    options = {opt for action in sub._actions for opt in action.option_strings}
    entrypoint_only = {"FEDMQ_BROKER_PASSWORD_FILE", "FEDMQ_LOG_LEVEL"}  # not subcommand options
    for key in set(_env(service)) - entrypoint_only:
        option = "--" + key.removeprefix("FEDMQ_").lower().replace("_", "-")
        assert option in options, f"{service}: {key} matches no option {option}"


def test_aggregator_chunks_just_under_the_broker_packet_limit() -> None:
    limit = int(conf.settings(conf.CONF_PATH.read_text())["max_packet_size"][0])
    max_packet = int(_env("aggregator")["FEDMQ_MAX_PACKET"])
    assert limit - 16 * 1024 <= max_packet < limit


def test_broker_config_paths_are_mounted_into_the_broker() -> None:
    active = conf.settings(conf.CONF_PATH.read_text())
    assert _host_path("mosquitto", "/mosquitto/config/mosquitto.conf") == (
        "./broker/mosquitto.conf",
        PurePosixPath("."),
    )
    assert _host_path("mosquitto", active["acl_file"][0])[0] == "./broker/acl"
    assert _host_path("mosquitto", active["persistence_location"][0])[0] == "broker-data"
    volume, inside = _host_path("mosquitto", active["password_file"][0])
    # broker-init writes the same file into the same volume
    init_target = dict(_mounts("broker-init"))[volume]
    assert f"--passwd-file {PurePosixPath(init_target) / inside} " in _init_script()


def _init_script() -> str:
    return str(SERVICES["broker-init"]["command"][0])


@pytest.mark.parametrize("service", ["aggregator", "devices"])
def test_service_password_files_are_written_by_broker_init(service: str) -> None:
    env = _env(service)
    user = env["FEDMQ_BROKER"].split("://")[1].split("@")[0]
    volume, inside = _host_path(service, env["FEDMQ_BROKER_PASSWORD_FILE"])
    init_path = PurePosixPath(dict(_mounts("broker-init"))[volume]) / inside
    assert f"add-user {user} --passwd-file /auth/passwd --secret-file {init_path}\n" in (
        _init_script()
    )


def test_prometheus_scrapes_the_services_metrics_ports() -> None:
    source, _ = _host_path("prometheus", "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load((ROOT / source / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    port = _env("aggregator")["FEDMQ_METRICS_PORT"]
    assert jobs["fedmq-aggregator"]["static_configs"][0]["targets"] == [f"aggregator:{port}"]
    sd = jobs["fedmq-devices"]["dns_sd_configs"][0]
    assert (sd["names"], str(sd["port"])) == (["devices"], _env("devices")["FEDMQ_METRICS_PORT"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]


def test_grafana_provisioning_matches_the_mounts() -> None:
    provisioning, _ = _host_path("grafana", "/etc/grafana/provisioning")
    root = ROOT / provisioning
    datasource = yaml.safe_load((root / "datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((root / "dashboards/fedmq.yml").read_text())["providers"][0]
    source, _ = _host_path("grafana", provider["options"]["path"])
    assert list((ROOT / source).glob("*.json"))
    home = _env("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    source, inside = _host_path("grafana", home)
    assert (ROOT / source / inside).is_file()


def test_dockerfile_builds_the_python_services() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "pip install ." in text
    copied = re.findall(r"^COPY (.+) \S+$", text, re.M)
    sources = [src for line in copied for src in line.split()]
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
        assert src not in ignored, f".dockerignore hides {src}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= set(sources)
    assert project["project"]["readme"] in sources
    entrypoint = re.search(r'^ENTRYPOINT \["(\S+)"\]$', text, re.M)
    assert entrypoint is not None
    script = ROOT / "broker/docker-entrypoint.sh"
    assert f"install -m 0755 {script.relative_to(ROOT)} /usr/local/bin/{entrypoint[1]}" in text
    assert script.stat().st_mode & stat.S_IXUSR


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("mqtt://aggregator@mosquitto:1883", "mqtt://aggregator:s3cr-t_@mosquitto:1883"),
        ("mqtts://sim@b.example:8883", "mqtts://sim:s3cr-t_@b.example:8883"),
        ("mqtt://u:given@h:1", "mqtt://u:given@h:1"),
    ],
)
def test_entrypoint_puts_the_password_file_into_the_broker_url(
    tmp_path: Path, broker: str, expected: str
) -> None:
    fake = tmp_path / "bin" / "fedmq"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s %s" "$FEDMQ_BROKER" "$*"\n')
    fake.chmod(0o755)
    secret = tmp_path / "password"
    secret.write_text("s3cr-t_\n")
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "FEDMQ_BROKER": broker,
        "FEDMQ_BROKER_PASSWORD_FILE": str(secret),
    }
    script = ROOT / "broker/docker-entrypoint.sh"
    out = subprocess.run(
        ["sh", str(script), "aggregator", "--buffer", "5"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == f"{expected} aggregator --buffer 5"


def test_entrypoint_refuses_a_password_file_without_a_user(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "FEDMQ_BROKER": "mqtt://h:1",
        "FEDMQ_BROKER_PASSWORD_FILE": str(tmp_path / "x"),
    }
    script = ROOT / "broker/docker-entrypoint.sh"
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, check=False)
    assert result.returncode == 2


def test_healthcheck_commands_parse() -> None:
    for name in LONG_RUNNING:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL")
        if test[0] == "CMD-SHELL":
            shlex.split(_interpolate(test[1]))  # balanced quotes
