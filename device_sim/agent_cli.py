"""``fedmq device``: one real device (paho-mqtt), training on its own data."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.agent_config import AgentConfig
from device_sim.os_battery import os_conditions
from device_sim.paho_agent import AgentSettings, PahoAgent
from device_sim.policy import Conditions, Policy
from fedmq.brokerurl import BrokerURL
from fedmq.cli import add_common, add_option
from fedmq.errors import ConfigError, FedmqError
from fedmq.tasks import Dataset, get_task
from fedmq.tensors import EncodingSpec

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "device", help="run one real device: train on local data, publish deltas",
        description="A device agent over paho-mqtt; uses the OS battery state when there is one.",
    )
    add_common(p, broker_default="mqtt://127.0.0.1:1883")
    add_option(p, "device-id", "", str, "this device's id (required)")
    add_option(p, "data", "", str, "local data: an .npz with arrays X and y")
    add_option(p, "device-index", 0, int, "without --data: train on this partition of the task")
    add_option(p, "partitions", 0, int, "task partitions N, 0 = the task's default")
    add_option(p, "encoding", "f32", str,
               "delta encoding: f32, f16, q8[:B], topk:F[:q8|f16], each optionally +zlib")
    add_option(p, "min-battery", 0.2, float, "train only at or above this battery, or charging")
    add_option(p, "metered", False, bool, "this device's link is metered")
    add_option(p, "tick", 1.0, float, "seconds between condition checks")
    add_option(p, "ack-timeout", 60.0, float, "seconds before an unacknowledged delta is resent")
    p.set_defaults(func=main)


def load_npz(path: Path) -> Dataset:
    try:
        with np.load(path) as npz:
            X, y = np.asarray(npz["X"], np.float32), np.asarray(npz["y"], np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read data {path}: {exc} (need arrays X and y)") from exc
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ConfigError(f"data {path}: X must be 2-D and y one label per row")
    return Dataset(X, y)


def build(args: argparse.Namespace) -> PahoAgent:
    if not args.broker or not args.device_id:
        raise ConfigError("--broker and --device-id are required")
    task = get_task(args.task, args.partitions or None)
    data = load_npz(Path(args.data)) if args.data else task.device_data(args.device_index)
    config = AgentConfig(
        args.device_id, args.task, args.device_index, args.prefix,
        EncodingSpec.parse(args.encoding), Policy(args.min_battery),
        ack_timeout=args.ack_timeout, has_data=len(data) > 0,
    )
    settings = AgentSettings(BrokerURL.parse(args.broker), config, tick=args.tick)
    metered = bool(args.metered)

    def conditions() -> Conditions:
        return os_conditions(metered=metered)

    return PahoAgent(settings, task, data, conditions)


def main(args: argparse.Namespace) -> int:
    try:
        agent = build(args)
    except FedmqError as exc:
        log.error("%s", exc)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    print(" ".join(f"{k}={v}" for k, v in sorted(agent.counts.items())))
    return 0
