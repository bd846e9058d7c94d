"""Every ``fedmq bench`` scenario runs in a tiny configuration and prints well-formed lines.

Benchmarks are not tests: nothing here asserts on speed or accuracy, only that
each command runs end to end and speaks the JSON-lines format.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import Emitter, median, read_lines, well_formed
from bench.tta import censored_median
from fedmq.cli import main as fedmq_main


def _lines(text: str) -> list[dict[str, object]]:
    records = [json.loads(row) for row in text.splitlines() if row.strip()]
    assert records, "the benchmark printed nothing"
    for record in records:
        assert well_formed(record), record
    return records


def test_emitter_writes_stdout_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.jsonl"
    emit = Emitter("demo", out=out)
    emit("x", float("nan"), "s", seed=1)
    emit("y", 2.0, "s")
    printed = _lines(capsys.readouterr().out)
    assert printed == read_lines(out)
    assert printed[0] == {"bench": "demo", "metric": "x", "value": None, "unit": "s", "seed": 1}


def test_medians_treat_unreached_runs_as_slowest() -> None:
    assert median([3.0, None, 1.0]) == 2.0
    assert censored_median([1.0, None, 3.0]) == 3.0
    assert censored_median([1.0, None, None]) is None
    assert censored_median([]) is None


def test_codec_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code = fedmq_main(["bench", "codec", "--params", "1000", "--repeats", "1",
                       "--encodings", "f32"])
    assert code == 0
    records = _lines(capsys.readouterr().out)
    assert {r["bench"] for r in records} == {"codec"}


def test_wire_sizes_without_a_broker(capsys: pytest.CaptureFixture[str]) -> None:
    code = fedmq_main(["bench", "wire", "--accuracy-encodings", "", "--devices", "2",
                       "--large-params", "1000", "--encodings", "f32,q8:256,topk:0.05:q8+zlib"])
    assert code == 0
    records = _lines(capsys.readouterr().out)
    ratios = {(r["model"], r["encoding"]): r["value"] for r in records
              if r["metric"] == "ratio_to_f32"}
    assert len(ratios) == 6


@pytest.mark.parametrize("scenario", ["ingest", "memory", "fleet-scale"])
def test_other_scenarios_dispatch(scenario: str) -> None:
    with pytest.raises(SystemExit) as exit_info:  # argparse exits 0 after --help
        fedmq_main(["bench", scenario, "--help"])
    assert exit_info.value.code == 0


@pytest.mark.integration
@pytest.mark.slow
def test_time_to_accuracy_and_wire_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace, results = tmp_path / "trace.jsonl", tmp_path / "tta.jsonl"
    code = fedmq_main(["bench", "time-to-accuracy", "--seeds", "0", "--devices", "20",
                       "--max-sim-seconds", "1.5", "--time-scale", "1", "--targets", "0.3,0.99",
                       "--centralized-epochs", "1", "--trace", str(trace),
                       "--out", str(results)])
    assert code == 0
    records = _lines(capsys.readouterr().out)
    assert records == read_lines(results)
    metrics = {r["metric"] for r in records}
    assert {"centralized_accuracy", "sim_seconds_to_accuracy", "speedup_sim_seconds",
            "uplink_bytes_ratio", "environment"} <= metrics
    modes = {r["mode"] for r in read_lines(trace)}
    assert modes == {"async", "sync"}

    wire = tmp_path / "wire.jsonl"
    code = fedmq_main(["bench", "wire", "--encodings", "f32", "--devices", "2",
                       "--large-params", "0", "--accuracy-encodings", "f32,q8:256",
                       "--accuracy-seeds", "0", "--sim-seconds", "1", "--out", str(wire)])
    assert code == 0
    records = _lines(capsys.readouterr().out)
    assert any(r["metric"] == "accuracy_loss_points" for r in records)

    code = fedmq_main(["bench", "plots", "--trace", str(trace), "--tta", str(results),
                       "--wire", str(wire), "--out-dir", str(tmp_path / "img")])
    assert code == 0
    assert (tmp_path / "img" / "tta_accuracy.png").stat().st_size > 0
    assert (tmp_path / "img" / "wire_accuracy_async.png").stat().st_size > 0
