"""Wire efficiency: bytes per delta for each encoding against raw float32, and its accuracy.

``fedmq bench wire [--accuracy-seeds 0,1,2] [--sim-seconds 20] [--out FILE]``

Sizes (no broker): every encoding, through the device's :class:`ErrorFeedback`
encoder and the real codec, on digits-100 deltas (the median over the first
``--devices`` devices' first local update) and on a synthetic 1M-parameter delta
(as in ``bench.codec``). ``payload_bytes`` is the whole Delta message;
``tensor_bytes`` only its encoded tensors; ``ratio_to_f32`` divides raw float32
(4 bytes per parameter) by the tensor bytes (how many times fewer).

Accuracy (real components): an async FedBuff (or, with ``--mode sync``, FedAvg) run per
encoding and seed on
digits-100 for ``--sim-seconds`` simulated seconds; reports the median test
accuracy of the last five versions, the uplink bytes per update the fleet really
published, and the points lost against float32 measured in the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Sequence

import msgpack
import numpy as np

from bench.codec import synthetic_delta
from bench.common import Emitter, add_output_args, median, parse_ints, ratio
from bench.federation import TASK, RunConfig, Trace, run_federation
from fedmq import codec
from fedmq.feedback import ErrorFeedback
from fedmq.messages import Delta
from fedmq.tasks import Params, get_task, local_seed

BENCH = "wire"
SIZE_ENCODINGS = ("f32", "f16", "f16+zlib", "q8:0", "q8:256", "q8:256+zlib", "topk:0.1:q8",
                  "topk:0.05:q8", "topk:0.05:q8+zlib", "topk:0.01:q8+zlib")
ACCURACY_ENCODINGS = ("f32", "f16", "q8:256", "topk:0.1:q8", "topk:0.05:q8+zlib",
                      "topk:0.01:q8+zlib")
TAIL = 5  # versions averaged at the end of an accuracy run


def digits_deltas(devices: int) -> list[Params]:
    """Each device's first local update from the initial model (devices with data only)."""
    task = get_task(TASK)
    start = task.initial_params()
    out: list[Params] = []
    for k in range(task.num_devices):
        data = task.device_data(k)
        if len(data) == 0:
            continue
        trained = task.train(start, data, seed=local_seed(k, 0)).params
        out.append({name: trained[name] - start[name] for name in start})
        if len(out) >= devices:
            break
    return out


def message_sizes(delta: Params, spec: str) -> tuple[int, int]:
    """(whole Delta message, encoded tensors only) bytes of one update under ``spec``."""
    tensors = ErrorFeedback(spec).encode(delta)
    msg = Delta(TASK, "sim-00000", "18f0c0ffee-1", 0, 100, tensors, 1.7e9, 0.5)
    return len(codec.encode(msg)), sum(len(msgpack.packb(t.to_wire())) for t in tensors.values())


def emit_sizes(emit: Emitter, model: str, deltas: Sequence[Params],
               encodings: Sequence[str]) -> None:
    params = sum(int(np.size(v)) for v in deltas[0].values())
    raw = params * 4
    for spec in encodings:
        sizes = [message_sizes(d, spec) for d in deltas]
        payload = statistics.median(s[0] for s in sizes)
        tensor = statistics.median(s[1] for s in sizes)
        common = {"encoding": spec, "model": model, "params": params, "samples": len(deltas)}
        emit("payload_bytes", payload, "bytes", **common)
        emit("tensor_bytes", tensor, "bytes", **common)
        emit("ratio_to_f32", ratio(raw, tensor), "x", of="raw_f32/tensor_bytes", **common)


def tail_accuracy(trace: Trace) -> float | None:
    accs = [p.accuracy for p in trace.points[-TAIL:]]
    return statistics.median(accs) if accs else None


def run_accuracy(emit: Emitter, encodings: Sequence[str], seeds: Sequence[int],
                 sim_seconds: float, time_scale: float, *, mode: str = "async") -> None:
    acc: dict[str, list[float | None]] = {}
    per_update: dict[str, list[float | None]] = {}
    for seed in seeds:
        for spec in encodings:
            config = RunConfig(mode=mode, seed=seed, encoding=spec, time_scale=time_scale,
                               stop_accuracy=None, max_sim_seconds=sim_seconds)
            trace = asyncio.run(run_federation(config))
            last = trace.final
            a = tail_accuracy(trace)
            b = ratio(last.uplink_bytes, last.updates) if last else None
            acc.setdefault(spec, []).append(a)
            per_update.setdefault(spec, []).append(b)
            common = {"encoding": spec, "seed": seed, "sim_seconds": sim_seconds, "mode": mode}
            emit("accuracy", a, "ratio", versions=last.version if last else 0, **common)
            emit("uplink_bytes_per_update", b, "bytes", **common)
    base = median(acc.get("f32", []))
    base_bytes = median(per_update.get("f32", []))
    for spec in encodings:
        m, b = median(acc[spec]), median(per_update[spec])
        common = {"encoding": spec, "stat": "median", "runs": len(seeds),
                  "sim_seconds": sim_seconds, "mode": mode}
        emit("accuracy", m, "ratio", **common)
        emit("uplink_bytes_per_update", b, "bytes", **common)
        emit("accuracy_loss_points", None if m is None or base is None else 100 * (base - m),
             "points", of="f32-encoding", **common)
        emit("uplink_ratio_to_f32", ratio(base_bytes, b), "x", of="f32/encoding", **common)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fedmq bench wire",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--encodings", default=",".join(SIZE_ENCODINGS))
    parser.add_argument("--accuracy-encodings", default=",".join(ACCURACY_ENCODINGS),
                        help="encodings trained end to end ('' to skip the accuracy runs)")
    parser.add_argument("--accuracy-seeds", type=parse_ints, default=(0, 1, 2))
    parser.add_argument("--sim-seconds", type=float, default=20.0,
                        help="simulated seconds per accuracy run")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--mode", choices=("async", "sync"), default="async",
                        help="aggregation of the accuracy runs (sync: FedAvg rounds)")
    parser.add_argument("--devices", type=int, default=20,
                        help="digits deltas whose sizes are measured")
    parser.add_argument("--large-params", type=int, default=1_000_000,
                        help="parameters of the synthetic large model (0 to skip)")
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emit = Emitter(BENCH, out=args.out)
    emit.environment()
    encodings = [e.strip() for e in args.encodings.split(",") if e.strip()]
    emit_sizes(emit, "digits", digits_deltas(args.devices), encodings)
    if args.large_params > 0:
        large = {"w": synthetic_delta(args.large_params)}
        emit_sizes(emit, f"synthetic-{args.large_params}", [large], encodings)
    trained = [e.strip() for e in args.accuracy_encodings.split(",") if e.strip()]
    if trained:
        run_accuracy(emit, trained, args.accuracy_seeds, args.sim_seconds, args.time_scale,
                     mode=args.mode)
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    raise SystemExit(run_module(main))
