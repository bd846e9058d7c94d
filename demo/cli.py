"""``fedmq demo``: see federated learning over MQTT work in under a minute."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from fedmq.brokerurl import BrokerURL
from fedmq.cli import env_default


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="embedded broker + aggregator + simulated fleet, with live progress",
        description="Runs everything in one process and exits 0 once the target accuracy is "
                    "reached, 1 if the timeout comes first.",
    )
    p.add_argument("--broker", default=env_default("broker"),
                   help="use this broker instead of the embedded one (mqtt://host:port)")
    p.add_argument("--devices", type=int, default=30, help="simulated devices (default 30)")
    p.add_argument("--task", default="digits", choices=["digits", "synthetic"])
    p.add_argument("--mode", default="async", choices=["async", "sync"])
    p.add_argument("--target-accuracy", type=float, default=0.85)
    p.add_argument("--timeout", type=float, default=50.0, help="seconds (default 50)")
    p.add_argument("--buffer", type=int, default=5, help="K: deltas per version / sync cohort")
    p.add_argument("--staleness", default="fedbuff")
    p.add_argument("--encoding", default="f32", help="f32, f16, q8[:block], topk:frac[:q8][+zlib]")
    p.add_argument("--time-scale", type=float, default=20.0,
                   help="simulated seconds per wall second")
    p.add_argument("--ideal", action="store_true",
                   help="devices never run low on battery or go offline")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="where the plot goes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true",
                   help="show the components' INFO logs between progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from demo.runner import DemoSettings, run_demo

    if not args.verbose:  # the progress line is the demo's output; keep warnings only
        for name in ("aggregator", "device_sim", "demo", "mqtt"):
            logging.getLogger(name).setLevel(logging.WARNING)
    settings = DemoSettings(
        devices=args.devices, task=args.task, mode=args.mode,
        target_accuracy=args.target_accuracy, timeout=args.timeout,
        broker=BrokerURL.parse(args.broker) if args.broker else None, buffer=args.buffer,
        staleness=args.staleness, encoding=args.encoding, time_scale=args.time_scale,
        realistic=not args.ideal, out_dir=args.out, seed=args.seed,
    )
    try:
        result = asyncio.run(run_demo(settings, live=sys.stdout.isatty()))
    except KeyboardInterrupt:
        return 130
    snap = result.snapshot
    print()
    print("summary")
    print(f"  reached {settings.target_accuracy:g}: {'yes' if result.reached else 'NO'} "
          f"after {result.elapsed:.1f} s")
    if snap is not None:
        acc = "-" if snap.accuracy is None else f"{snap.accuracy:.4f}"
        print(f"  final model version {snap.version}, test accuracy {acc}")
        print(f"  updates accepted {int(snap.accepted)}, rejected {int(snap.rejected)}")
    if result.plot is not None:
        print(f"  plot: {result.plot}")
    if not result.reached:
        print(f"fedmq demo: timeout after {settings.timeout:g} s before reaching accuracy "
              f"{settings.target_accuracy:g}", file=sys.stderr)
        return 1
    return 0
