"""PNG plots of benchmark results: ``fedmq bench plots --trace T --wire W --out-dir DIR``.

- ``tta_accuracy.png``: test accuracy against simulated seconds, one line per
  run of the time-to-accuracy trace (async and sync in two colours), with the
  0.95 target and, if the results file gives it, the centralized bound;
- ``wire_accuracy.png``: accuracy reached against measured uplink bytes per
  update, one point per encoding (medians of the wire benchmark).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import read_lines

COLOURS = {"async": "tab:blue", "sync": "tab:orange"}
LABELS = {"async": "async (FedBuff K=10)", "sync": "sync (FedAvg, cohort 10)"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def runs(trace: Sequence[dict[str, Any]]) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(mode, seed) -> [(simulated seconds, accuracy)] from trace lines."""
    out: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in trace:
        if r.get("metric") == "accuracy" and "sim_seconds" in r and r["value"] is not None:
            out.setdefault((str(r["mode"]), int(r["seed"])), []).append(
                (float(r["sim_seconds"]), float(r["value"])))
    return out


def plot_tta(trace: Sequence[dict[str, Any]], path: Path, centralized: float | None = None,
             target: float = 0.95) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labelled: set[str] = set()
    for (mode, _seed), points in sorted(runs(trace).items()):
        xs, ys = zip(*points, strict=True)
        label = None if mode in labelled else LABELS.get(mode, mode)
        labelled.add(mode)
        ax.plot(xs, ys, color=COLOURS.get(mode, "grey"), alpha=0.8, lw=1.2, label=label)
    ax.axhline(target, color="black", ls="--", lw=0.8, label=f"target {target}")
    if centralized is not None:
        ax.axhline(centralized, color="green", ls=":", lw=1.0,
                   label=f"centralized {centralized:.3f}")
    ax.set(xlabel="simulated seconds", ylabel="test accuracy", ylim=(0.5, 1.0),
           title="digits-100: accuracy vs simulated time (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, plt, path)


def plot_wire(results: Sequence[dict[str, Any]], path: Path, mode: str = "async") -> Path:
    plt = _pyplot()
    acc: dict[str, float] = {}
    size: dict[str, float] = {}
    for r in results:
        if r.get("stat") != "median" or r["value"] is None or r.get("mode", mode) != mode:
            continue
        if r["metric"] == "accuracy":
            acc[r["encoding"]] = float(r["value"])
        elif r["metric"] == "uplink_bytes_per_update":
            size[r["encoding"]] = float(r["value"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, enc in enumerate(sorted(set(acc) & set(size), key=lambda e: -size[e])):
        ax.scatter(size[enc], acc[enc], s=30)
        ax.annotate(enc, (size[enc], acc[enc]), textcoords="offset points",
                    xytext=(5, 5 if i % 2 == 0 else -11), fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="uplink bytes per update (measured, log scale)", ylabel="test accuracy",
           title=f"digits-100: accuracy vs bytes per delta, by encoding ({mode})")
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def centralized_from(results: Sequence[dict[str, Any]]) -> float | None:
    return next((float(r["value"]) for r in results
                 if r.get("metric") == "centralized_accuracy"), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedmq bench plots",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trace", type=Path, help="time-to-accuracy --trace file")
    parser.add_argument("--tta", type=Path, help="time-to-accuracy results (centralized bound)")
    parser.add_argument("--wire", type=Path, help="wire results")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    if args.trace is not None:
        centralized = centralized_from(read_lines(args.tta)) if args.tta else None
        print(plot_tta(read_lines(args.trace), args.out_dir / "tta_accuracy.png", centralized))
    if args.wire is not None:
        lines = read_lines(args.wire)
        for mode in sorted({str(r.get("mode", "async")) for r in lines
                            if r.get("stat") == "median"}):
            print(plot_wire(lines, args.out_dir / f"wire_accuracy_{mode}.png", mode))
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    raise SystemExit(run_module(main))
