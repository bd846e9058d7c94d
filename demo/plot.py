"""The demo's PNG: test accuracy against wall time and against model version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from demo.progress import Point


def plot_progress(
    points: Sequence[Point], path: Path, *, title: str, target: float | None = None
) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    pts = [p for p in points if p.accuracy is not None]
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, xs, label in (
        (ax_t, [p.elapsed for p in pts], "wall time (s)"),
        (ax_v, [p.version for p in pts], "model version"),
    ):
        ax.plot(xs, [p.accuracy for p in pts], marker=".", linewidth=1.2)
        if target is not None:
            ax.axhline(target, color="tab:red", linestyle="--", linewidth=1, label="target")
            ax.legend(loc="lower right")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
