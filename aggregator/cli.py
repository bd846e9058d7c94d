"""``fedmq aggregator`` (also ``python -m aggregator``): options, environment, signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from aggregator.settings import Settings
from aggregator.staleness import Staleness
from fedmq.brokerurl import BrokerURL
from fedmq.cli import add_common, add_option
from fedmq.errors import FedmqError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "aggregator", help="fold device deltas into the global model and publish it",
        description="Staleness-weighted buffered averaging (FedAsync/FedBuff) or sync FedAvg.",
    )
    add_common(p, broker_default="mqtt://127.0.0.1:1883")
    add_option(p, "mode", "async", str, "async (FedBuff/FedAsync) or sync (FedAvg rounds)")
    add_option(p, "buffer", 10, int, "K: deltas per version in async mode (1 = FedAsync)")
    add_option(p, "min-buffer", 1, int, "K_min: flush at the buffer timeout only with this many")
    add_option(p, "buffer-timeout", 30.0, float, "seconds after the first buffered delta to flush")
    add_option(p, "staleness", "fedbuff", str, "constant | polynomial:a | hinge:a,b | fedbuff")
    add_option(p, "max-staleness", 20, int, "reject deltas staler than this many versions")
    add_option(p, "server-lr", 1.0, float, "server learning rate eta (async mode)")
    add_option(p, "state-dir", "./aggregator-state", str, "directory of the durable state")
    add_option(p, "metrics-port", 0, int, "Prometheus port, 0 = off")
    add_option(p, "cohort", 10, int, "sync: deltas per round")
    add_option(p, "round-deadline", 60.0, float, "sync: seconds a round waits for its cohort")
    add_option(p, "max-packet", 0, int, "chunk models larger than this many bytes, 0 = never")
    add_option(p, "max-norm", 0.0, float, "reject deltas with a larger L2 norm, 0 = no bound")
    add_option(p, "client-id", "", str, "MQTT client id (default fedmq-aggregator-<task>)")
    add_option(p, "dedup-window", 10_000, int, "remember at least this many folded update ids")
    add_option(p, "receive-maximum", 128, int,
               "MQTT 5 Receive Maximum: deltas held in memory at most; 0 = MQTT 3.1.1 only")
    add_option(p, "max-held-mib", 64, int, "MiB of deltas held before the socket is not read")
    p.set_defaults(func=main)


def settings_from(args: argparse.Namespace) -> Settings:
    if not args.broker:
        raise FedmqError("--broker (or FEDMQ_BROKER) is required")
    return Settings(
        broker=BrokerURL.parse(args.broker), task=args.task, prefix=args.prefix,
        state_dir=Path(args.state_dir), mode=args.mode, buffer=args.buffer,
        min_buffer=args.min_buffer, buffer_timeout=args.buffer_timeout,
        staleness=Staleness.parse(args.staleness), max_staleness=args.max_staleness,
        server_lr=args.server_lr, cohort=args.cohort, round_deadline=args.round_deadline,
        max_packet=args.max_packet or None, max_norm=args.max_norm or None,
        metrics_port=args.metrics_port, client_id=args.client_id or None,
        dedup_window=args.dedup_window, receive_maximum=args.receive_maximum,
        max_held_bytes=args.max_held_mib * 2**20,
    )


async def _serve(settings: Settings) -> None:
    from aggregator.service import run_aggregator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_aggregator(settings, registry=CollectorRegistry(), stop=stop)


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        asyncio.run(_serve(settings))
    except FedmqError as exc:
        log.error("%s", exc)
        return 2
    return 0
