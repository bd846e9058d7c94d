"""Grafana dashboard and Prometheus config/rules: structure, metric contract, promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards/grafana"
PROMETHEUS = ROOT / "dashboards/prometheus"
DASHBOARD: dict[str, Any] = json.loads((GRAFANA / "dashboards/fedmq.json").read_text())

CONTRACT = {
    "fedmq_updates_received_total", "fedmq_updates_accepted_total",
    "fedmq_updates_rejected_total", "fedmq_update_staleness", "fedmq_update_bytes",
    "fedmq_model_version", "fedmq_model_published_total", "fedmq_aggregation_seconds",
    "fedmq_buffer_updates", "fedmq_devices", "fedmq_global_accuracy",
    "fedmq_queue_dropped_total", "fedmq_sim_devices", "fedmq_sim_updates_published_total",
    "fedmq_sim_bytes_published_total", "fedmq_sim_skipped_total", "fedmq_sim_battery_ratio",
    "fedmq_sim_training_seconds",
}  # fmt: skip
GRAFANA_VARIABLES = {"$__rate_interval": "5s", "$__interval": "5s", "$__range": "5m"}


def panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def dashboard_exprs(task: str = ".*", **variables: str) -> list[str]:
    """Every PromQL expression of the dashboard with Grafana's variables filled in."""
    values = {**GRAFANA_VARIABLES, **variables, "$task": task}
    out = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unknown variable in {expr}"
            out.append(expr)
    return out


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def base_names(exprs: list[str]) -> set[str]:
    names = set(re.findall(r"\b(fedmq_[a-z_]+)", " ".join(exprs)))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def promtool() -> str:
    return require_binary("promtool", "prometheus")


def test_dashboard_structure() -> None:
    assert DASHBOARD["uid"] == "fedmq-overview"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for panel in panels():
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    (task,) = DASHBOARD["templating"]["list"]
    assert task["name"] == "task"
    assert all('task=~"$task"' in e for p in panels() for t in p["targets"]
               if "fedmq_" in (e := t["expr"]))  # fmt: skip


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        g = panel["gridPos"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, panel["title"]
        assert g["x"] + g["w"] <= 24
        taken |= cells


def test_dashboard_covers_the_issue() -> None:
    titles = " | ".join(p["title"].lower() for p in panels())
    for topic in ("model version", "accuracy", "accepted vs rejected", "staleness",
                  "bytes per update", "compression", "buffer", "aggregation latency",
                  "devices by state", "battery"):  # fmt: skip
        assert topic in titles, topic
    assert base_names(dashboard_exprs()) >= CONTRACT


def test_metrics_in_dashboards_and_alerts_exist_in_the_code() -> None:
    import aggregator.metrics as aggregator_metrics
    import device_sim.metrics as fleet_metrics

    registry = CollectorRegistry()
    aggregator_metrics.Metrics(registry, "digits")
    fleet_metrics.FleetMetrics(registry, "digits")
    exported = set()
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        exported.add(family.name + suffix)
    used = base_names(dashboard_exprs() + [r["expr"] for r in alert_rules()])
    assert used <= exported, used - exported
    assert exported >= CONTRACT


def test_alert_rules_cover_the_issue() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {"FedmqAggregatorDown", "FedmqNoNewModel", "FedmqHighRejectionRatio",
            "FedmqQueueDrops"} <= names  # fmt: skip
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]


@pytest.mark.prometheus
def test_promtool_accepts_config_and_rules() -> None:
    tool = promtool()
    for args in (
        ["check", "config", str(PROMETHEUS / "prometheus.yml")],
        ["check", "rules", str(PROMETHEUS / "alerts.yml")],
    ):
        result = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_alert_rules_fire_as_designed() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """promtool has no expression linter, so check them as recording rules."""
    rules = [{"record": f"fedmq:dashboard:{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
