"""Time to accuracy on digits-100: async FedBuff against sync FedAvg, same fleet, same seeds.

``fedmq bench time-to-accuracy [--seeds 0,1,2] [--time-scale 0.25] [--out FILE]``

For every seed it runs both modes one after the other through the real
components (:mod:`bench.federation`) and reports, per run and as medians over
the seeds, the simulated seconds, wall seconds, model versions, published
updates and uplink bytes until the aggregator's test accuracy first reaches
each target. A run that never reaches a target counts as infinitely slow in the
median (reported as null, with ``reached`` saying how many runs did). Ratios
compare the medians of the two modes measured in the same invocation. The
centralized upper bound trains the same classifier for 30 epochs over the whole
train split. ``--trace FILE`` keeps every version's point for :mod:`bench.plots`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import Emitter, add_output_args, parse_floats, parse_ints, ratio
from bench.federation import TASK, RunConfig, Trace, run_federation
from fedmq.tasks import Dataset, get_task

BENCH = "time-to-accuracy"
TARGETS = (0.80, 0.85, 0.90, 0.93, 0.95)
MEASURES = {  # metric name -> (Point attribute, unit)
    "sim_seconds": ("sim", "s"),
    "wall_seconds": ("wall", "s"),
    "versions": ("version", "versions"),
    "updates": ("updates", "updates"),
    "uplink_bytes": ("uplink_bytes", "bytes"),
}


def centralized_accuracy(epochs: int = 30, seed: int = 0) -> float:
    """The same classifier trained on the whole train split (the upper bound)."""
    task = get_task(TASK)
    parts = [task.device_data(k) for k in range(task.num_devices)]
    data = Dataset(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]))
    trained = dataclasses.replace(task, epochs=epochs).train(
        task.initial_params(), data, seed=seed)
    return task.evaluate(trained.params)


def censored_median(values: Sequence[float | None]) -> float | None:
    """Median where None means "never reached" (+inf); None if the median is not reached."""
    if not values:
        return None
    m = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(m) else m


def reached(trace: Trace, target: float, attribute: str) -> float | None:
    point = trace.first_reaching(target)
    return None if point is None else float(getattr(point, attribute))


def emit_run(emit: Emitter, trace: Trace, targets: Sequence[float]) -> None:
    c = trace.config
    common = {"mode": c.mode, "seed": c.seed, "encoding": c.encoding,
              "time_scale": c.time_scale}
    for target in targets:
        for metric, (attr, unit) in MEASURES.items():
            emit(f"{metric}_to_accuracy", reached(trace, target, attr), unit,
                 target=target, **common)
    final = trace.final
    emit("final_accuracy", final.accuracy if final else None, "ratio",
         sim_seconds=final.sim if final else None, **common)


def emit_summary(emit: Emitter, traces: Sequence[Trace], targets: Sequence[float],
                 modes: Sequence[str]) -> None:
    medians: dict[tuple[str, str, float], float | None] = {}
    for mode in modes:
        runs = [t for t in traces if t.config.mode == mode]
        for target in targets:
            hits = sum(t.first_reaching(target) is not None for t in runs)
            for metric, (attr, unit) in MEASURES.items():
                m = censored_median([reached(t, target, attr) for t in runs])
                medians[(mode, metric, target)] = m
                emit(f"{metric}_to_accuracy", m, unit, stat="median", mode=mode,
                     target=target, runs=len(runs), reached=hits)
    if {"async", "sync"} <= set(modes):
        for target in targets:
            emit("speedup_sim_seconds", ratio(medians[("sync", "sim_seconds", target)],
                                              medians[("async", "sim_seconds", target)]),
                 "x", stat="median", target=target, of="sync/async")
            emit("speedup_wall_seconds", ratio(medians[("sync", "wall_seconds", target)],
                                               medians[("async", "wall_seconds", target)]),
                 "x", stat="median", target=target, of="sync/async")
            emit("uplink_bytes_ratio", ratio(medians[("async", "uplink_bytes", target)],
                                             medians[("sync", "uplink_bytes", target)]),
                 "ratio", stat="median", target=target, of="async/sync")


def write_trace(path: Path, trace: Trace) -> None:
    tracer = Emitter(BENCH, out=path, stream=None)
    c = trace.config
    for p in trace.points:
        tracer("accuracy", p.accuracy, "ratio", mode=c.mode, seed=c.seed, encoding=c.encoding,
               version=p.version, sim_seconds=round(p.sim, 4), wall_seconds=round(p.wall, 4),
               uplink_bytes=p.uplink_bytes, updates=p.updates)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fedmq bench time-to-accuracy",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seeds", type=parse_ints, default=(0, 1, 2), help="fleet seeds")
    parser.add_argument("--modes", default="async,sync", help="comma-separated: async,sync")
    parser.add_argument("--targets", type=parse_floats, default=TARGETS)
    parser.add_argument("--time-scale", type=float, default=0.25,
                        help="simulated seconds per wall second (low: wall overhead weighs less)")
    parser.add_argument("--max-sim-seconds", type=float, default=45.0,
                        help="give up on a run after this much simulated time")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--buffer", type=int, default=10, help="FedBuff K (async)")
    parser.add_argument("--server-lr", type=float, default=1.0)
    parser.add_argument("--encoding", default="f32")
    parser.add_argument("--centralized-epochs", type=int, default=30)
    parser.add_argument("--trace", type=Path, default=None,
                        help="append every version's accuracy point to this JSONL file")
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emit = Emitter(BENCH, out=args.out)
    emit.environment()
    emit("centralized_accuracy", centralized_accuracy(args.centralized_epochs), "ratio",
         epochs=args.centralized_epochs)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    targets = tuple(sorted(args.targets))
    traces: list[Trace] = []
    for seed in args.seeds:
        for mode in modes:
            config = RunConfig(
                mode=mode, seed=seed, encoding=args.encoding, devices=args.devices,
                buffer=args.buffer, server_lr=args.server_lr, time_scale=args.time_scale,
                stop_accuracy=max(targets), max_sim_seconds=args.max_sim_seconds,
            )
            trace = asyncio.run(run_federation(config))
            traces.append(trace)
            emit_run(emit, trace, targets)
            if args.trace is not None:
                write_trace(args.trace, trace)
    emit_summary(emit, traces, targets, modes)
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    raise SystemExit(run_module(main))
