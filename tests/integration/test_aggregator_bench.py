"""Smoke runs of the aggregator benchmarks and the CLI's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.cli import settings_from
from bench import ingest, memory
from fedmq.cli import build_parser
from fedmq.errors import ConfigError


@pytest.mark.integration
@pytest.mark.parametrize("bench", [ingest, memory])
def test_tiny_benchmarks_write_json_lines(bench: object, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.jsonl"
    assert bench.main(["--tiny", "--out", str(out)]) == 0  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines == [json.loads(x) for x in out.read_text().splitlines()]
    assert all({"bench", "metric", "value", "unit"} <= set(x) for x in lines)
    assert len(lines) >= 3


def test_cli_options_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDMQ_BUFFER", "7")
    monkeypatch.setenv("FEDMQ_STALENESS", "hinge:0.5,3")
    args = build_parser(["aggregator"]).parse_args(
        ["aggregator", "--broker", "mqtt://u:p@broker:1884", "--task", "digits",
         "--state-dir", str(tmp_path), "--max-norm", "5", "--mode", "async"])
    s = settings_from(args)
    assert (s.buffer, str(s.staleness), s.max_norm, s.max_packet) == (7, "hinge:0.5,3", 5.0, None)
    assert (s.broker.username, s.broker.password, s.broker.port) == ("u", "p", 1884)
    bad = build_parser(["aggregator"]).parse_args(["aggregator", "--min-buffer", "20"])
    with pytest.raises(ConfigError, match="min-buffer"):
        settings_from(bad)
