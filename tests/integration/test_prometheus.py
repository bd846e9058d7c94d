"""A real Prometheus scrapes a real aggregator and fleet training through the production broker.

Every PromQL expression of the Grafana dashboard must return data and every alert
rule must evaluate without error. Prometheus scrapes every second so that the
dashboard's ``$__rate_interval`` (filled in as 5s) spans several samples.
Waiting is polling with a generous bound, never a timed assertion.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from paho.mqtt import publish

from broker import conf, passwd
from broker.mosquitto import Mosquitto, free_port, wait_for_port
from tests.conftest import require_binary
from tests.unit.test_dashboards import PROMETHEUS, alert_rules, dashboard_exprs

pytestmark = [pytest.mark.integration, pytest.mark.prometheus, pytest.mark.slow]

TASK = "digits"
DEADLINE = 150.0  # seconds of training to wait for at most; normally ~20


def _prometheus_binary() -> str:
    return require_binary("prometheus", "prometheus")


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start processes in their own session; every one is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):  # fleet first, then aggregator, then Prometheus
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def _ready(port: int, attempts: int = 300) -> bool:
    """Poll /-/ready: Prometheus answers 503 until its TSDB is open."""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                return True
        except OSError:  # refused, or HTTPError 503 (a subclass)
            time.sleep(0.2)
    return False


def _fleet_command(url: str, metrics_port: int) -> list[str]:
    return [
        sys.executable, "-m", "fedmq", "devices", "--broker", url, "--task", TASK,
        "--count", "20", "--time-scale", "100", "--concurrency", "5",
        "--metrics-port", str(metrics_port),
    ]  # fmt: skip


def test_prometheus_scrapes_training_and_every_dashboard_query_returns_data(
    mosquitto_factory: Callable[..., Mosquitto],
    processes: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    prometheus = _prometheus_binary()
    # the production broker: authentication and the ACL are part of what is tested
    secrets = {"aggregator": passwd.generate_password(), "simulator": passwd.generate_password()}
    for user, password in secrets.items():
        passwd.set_password(tmp_path / "passwd", user, password)
    mqtt_port = free_port()
    broker_conf = conf.localize(
        conf.CONF_PATH.read_text(), port=mqtt_port, data_dir=tmp_path,
        passwd_file=tmp_path / "passwd", acl_file=conf.ACL_PATH,
        run_as="root" if os.geteuid() == 0 else None,
    )  # fmt: skip
    mosquitto_factory(port=mqtt_port, config_text=broker_conf)

    agg_port, fleet_port, prom_port = free_port(), free_port(), free_port()
    aggregator = processes(
        [
            sys.executable,
            "-m",
            "fedmq",
            "aggregator",
            "--broker",
            f"mqtt://aggregator:{secrets['aggregator']}@127.0.0.1:{mqtt_port}",
            "--task",
            TASK,
            "--mode",
            "async",
            "--buffer",
            "5",
            "--staleness",
            "fedbuff",
            "--state-dir",
            str(tmp_path / "state"),
            "--metrics-port",
            str(agg_port),
        ],
        tmp_path / "aggregator.log",
    )
    assert wait_for_port("127.0.0.1", agg_port, 60), (tmp_path / "aggregator.log").read_text()
    fleet = processes(
        _fleet_command(
            f"mqtt://simulator:{secrets['simulator']}@127.0.0.1:{mqtt_port}", fleet_port
        ),
        tmp_path / "fleet.log",
    )

    rules = tmp_path / "alerts.yml"
    shutil.copy(PROMETHEUS / "alerts.yml", rules)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "fedmq-aggregator",
             "static_configs": [{"targets": [f"127.0.0.1:{agg_port}"]}]},
            {"job_name": "fedmq-devices",
             "static_configs": [{"targets": [f"127.0.0.1:{fleet_port}"]}]},
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    processes(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path / "prometheus.log",
    )
    assert _ready(prom_port), (tmp_path / "prometheus.log").read_text()
    pending = set(dashboard_exprs(task=TASK))
    trained = False  # a few model versions: the expressions saw real training
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        # a malformed delta every second while anything is pending: a rate() needs the
        # rejected counter to grow between two scrapes, not just to exist
        publish.single(
            f"fedmq/v1/{TASK}/delta/sim-99999", b"not msgpack", qos=1, hostname="127.0.0.1",
            port=mqtt_port, auth={"username": "simulator", "password": secrets["simulator"]},
        )  # fmt: skip
        for proc, name in ((aggregator, "aggregator"), (fleet, "fleet")):
            assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
        pending = {expr for expr in pending if not _query(prom_port, expr)}
        versions = _query(prom_port, f'fedmq_model_version{{task="{TASK}"}}')
        trained = bool(versions) and float(versions[0]["value"][1]) >= 3
        if trained and not pending:
            break
        time.sleep(1)
    logs = "".join((tmp_path / f"{n}.log").read_text()[-1500:] for n in ("aggregator", "fleet"))
    assert trained, logs
    assert not pending, f"no data for: {sorted(pending)}\n{logs}"

    # both sides were scraped, and every alert rule evaluates without error
    ups = {r["metric"]["job"]: r["value"][1] for r in _query(prom_port, "up")}
    assert ups == {"fedmq-aggregator": "1", "fedmq-devices": "1"}
    for rule in alert_rules():
        _query(prom_port, rule["expr"])  # raises on a query error
    evaluated: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        groups = _get(prom_port, "/api/v1/rules")["data"]["groups"]
        evaluated = [r for g in groups for r in g["rules"]]
        if evaluated and all(r.get("lastEvaluation", "").startswith("20") for r in evaluated):
            break
        time.sleep(0.5)
    assert {r["name"] for r in evaluated} == {r["alert"] for r in alert_rules()}
    assert all(r["health"] == "ok" for r in evaluated), evaluated
