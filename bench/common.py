"""What every benchmark shares: JSON-lines output, medians, the machine's description.

A result line is ``{"bench": ..., "metric": ..., "value": ..., "unit": ..., **params}``;
:class:`Emitter` writes each line to stdout and, with ``--out FILE``, appends it
to that file too, so a run can be kept under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("bench", "metric", "value", "unit")


def line(bench: str, metric: str, value: float | None, unit: str, **params: Any) -> dict[str, Any]:
    """One result as a dict; floats are rounded to 6 significant decimals, NaN becomes null."""
    if isinstance(value, float):
        value = None if math.isnan(value) else round(value, 6)
    return {"bench": bench, "metric": metric, "value": value, "unit": unit, **params}


@dataclass
class Emitter:
    """Writes result lines to ``stream`` (stdout) and, if given, appends them to ``out``."""

    bench: str
    out: Path | None = None
    stream: IO[str] | None = field(default_factory=lambda: sys.stdout)  # None: file only
    lines: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, metric: str, value: float | None, unit: str, **params: Any) -> None:
        record = line(self.bench, metric, value, unit, **params)
        text = json.dumps(record, sort_keys=False)
        self.lines.append(record)
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            with self.out.open("a", encoding="utf-8") as f:
                f.write(text + "\n")

    def environment(self) -> None:
        """One ``environment`` line describing the machine (value: its core count)."""
        env = describe_environment()
        self("environment", float(env.pop("cores")), "cores", **env)


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None; None if there are none (never reached)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for row in f:
                if row.startswith("model name"):
                    return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mosquitto_version(binary: str = "mosquitto") -> str:
    for candidate in (binary, "/usr/sbin/mosquitto"):
        try:
            out = subprocess.run([candidate, "-h"], check=False, capture_output=True,
                                 text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            continue
        first = (out.stdout or out.stderr).splitlines()[:1]
        if first:
            return first[0].replace("mosquitto version", "").strip()
    return "unknown"


def describe_environment() -> dict[str, Any]:
    """Cores, CPU model, Python, numpy, scikit-learn and mosquitto versions."""
    import numpy
    import sklearn

    return {
        "cores": os.cpu_count() or 1,
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "mosquitto": mosquitto_version(),
        "platform": platform.platform(terse=True),
    }


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="also append the JSON lines to this file")


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Result lines of a JSONL file (blank lines skipped)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(row) for row in f if row.strip()]


def well_formed(record: dict[str, Any]) -> bool:
    """True if ``record`` carries the four keys every result line must have."""
    return all(k in record for k in REQUIRED_KEYS) and (
        record["value"] is None or isinstance(record["value"], int | float)
    )


def parse_floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def first_reaching(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """The x of the first (x, accuracy) point with accuracy >= target, else None."""
    for x, acc in points:
        if acc >= target:
            return x
    return None
