"""``fedmq watch``: print each new global model version; optionally save them."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from fedmq.brokerurl import BrokerURL
from fedmq.cli import add_common, env_default


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="follow the retained global model as a device would")
    add_common(p, broker_default="mqtt://127.0.0.1:1883")
    p.add_argument("--save", type=Path, default=env_default("save"),
                   help="store each model here as a pickled sklearn estimator")
    p.add_argument("--count", type=int, default=0, help="exit 0 after this many versions")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="exit 1 if --count versions were not seen within this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from demo.watch import WatchSettings, watch

    settings = WatchSettings(
        BrokerURL.parse(args.broker), args.task, args.prefix, args.save, args.count, args.timeout
    )
    try:
        return asyncio.run(watch(settings))
    except KeyboardInterrupt:
        return 130
