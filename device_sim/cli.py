"""``fedmq devices`` (also ``python -m device_sim``): run a simulated fleet."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
from typing import Any

from prometheus_client import CollectorRegistry

from device_sim.policy import Policy
from device_sim.settings import FleetSettings
from fedmq.brokerurl import BrokerURL
from fedmq.cli import add_common, add_option
from fedmq.errors import FedmqError
from fedmq.tensors import EncodingSpec

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "devices", help="simulate a fleet of devices, one MQTT connection each",
        description="Simulated devices with battery, flaky links and heavy-tailed speeds.",
    )
    add_fleet_options(p)
    p.set_defaults(func=main)


def add_fleet_options(p: argparse.ArgumentParser) -> None:
    add_common(p, broker_default="mqtt://127.0.0.1:1883")
    add_option(p, "count", 100, int, "number of simulated devices (ids <id-prefix>-00000..)")
    add_option(p, "id-prefix", "sim", str, "device id prefix; give each fleet replica its own")
    add_option(p, "partitions", 0, int, "task partitions N, 0 = the task's default")
    add_option(p, "alpha", 0.5, float, "Dirichlet concentration of the label partition")
    add_option(p, "time-scale", 1.0, float, "simulated seconds per wall second")
    add_option(p, "concurrency", 10, int, "devices training at once")
    add_option(p, "rounds", False, bool,
               "sync FedAvg rounds: only --concurrency devices, drawn at random, train on each "
               "model version")
    add_option(p, "encoding", "f32", str,
               "delta encoding: f32, f16, q8[:B], topk:F[:q8|f16], each optionally +zlib")
    add_option(p, "seed", 0, int, "seed of batteries, links and backoff jitter")
    add_option(p, "duration", 0.0, float, "stop after this many wall seconds, 0 = run until killed")
    add_option(p, "max-updates", 0, int, "stop after this many published updates, 0 = no limit")
    add_option(p, "metrics-port", 0, int, "Prometheus port, 0 = off")
    add_option(p, "ideal", False, bool, "no battery limits, always online")
    add_option(p, "min-battery", 0.2, float, "train only at or above this battery, or charging")
    add_option(p, "unmetered-only", False, bool, "train only on unmetered links")
    add_option(p, "tick", 0.5, float, "wall seconds between a device's condition checks")
    add_option(p, "ack-timeout", 30.0, float, "wall seconds before an unacked delta is resent")
    add_option(p, "connect-rate", 500.0, float, "new connections per wall second")
    add_option(p, "password-template", "", str, "per-device password, e.g. 'pw-{device}'")


def settings_from(args: argparse.Namespace) -> FleetSettings:
    if not args.broker:
        raise FedmqError("--broker (or FEDMQ_BROKER) is required")
    settings = FleetSettings(
        BrokerURL.parse(args.broker), task=args.task, prefix=args.prefix, count=args.count,
        partitions=args.partitions or None, alpha=args.alpha, time_scale=args.time_scale,
        concurrency=args.concurrency, rounds=args.rounds,
        encoding=EncodingSpec.parse(args.encoding),
        seed=args.seed, duration=args.duration or None, max_updates=args.max_updates or None,
        metrics_port=args.metrics_port,
        policy=Policy(args.min_battery, require_unmetered=args.unmetered_only),
        tick=args.tick, ack_timeout=args.ack_timeout, connect_rate=args.connect_rate,
        password_template=args.password_template or None, id_prefix=args.id_prefix,
    )
    if args.ideal:
        settings = dataclasses.replace(settings, battery=None, network=None)
    return settings


async def _serve(settings: FleetSettings) -> None:
    from device_sim.fleet import run_fleet

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    view = await run_fleet(settings, registry=CollectorRegistry(), stop=stop)
    print(f"published {view.updates_published} updates ({view.bytes_published} bytes), "
          f"{view.accepted} accepted, {view.rejected} rejected")


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except FedmqError as exc:
        log.error("%s", exc)
        return 2
    asyncio.run(_serve(settings))
    return 0
