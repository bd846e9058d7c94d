"""``fedmq bench <scenario> [options]``: every benchmark scenario behind one command.

Each scenario lives in its own module exposing ``main(argv) -> int``; it is
imported only when named, and everything after the scenario's name is passed
on untouched (``fedmq bench wire --help`` shows that scenario's options).
Results are JSON lines on stdout (and ``--out FILE`` where the scenario has it).
"""

from __future__ import annotations

import argparse
import importlib
import signal
from collections.abc import Callable, Sequence
from typing import Any

#: scenario -> (module with ``main(argv)``, one-line description)
SCENARIOS: dict[str, tuple[str, str]] = {
    "time-to-accuracy": ("bench.tta", "async FedBuff vs sync FedAvg on digits-100"),
    "wire": ("bench.wire", "bytes per delta and accuracy for each encoding"),
    "ingest": ("bench.ingest", "aggregator deltas/s through mosquitto vs a numpy fold"),
    "memory": ("bench.memory", "aggregator peak RSS against model and buffer size"),
    "fleet-scale": ("bench.fleet_scale", "simulated devices one process keeps training"),
    "codec": ("bench.codec", "tensor encode/decode speed and compression"),
    "plots": ("bench.plots", "PNG plots from time-to-accuracy and wire results"),
}


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Python's default SIGTERM ends the process without unwinding, which would leave
    # the scenario's private mosquitto running; SystemExit runs every ``finally``.
    raise SystemExit(128 + signum)


def run_module(main: Callable[[], int | None]) -> int:
    """``python -m bench.<scenario>``: the same SIGTERM handling as ``fedmq bench``."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return int(main() or 0)


def run_scenario(name: str, argv: Sequence[str]) -> int:
    """Import the scenario's module and run its ``main`` with ``argv``."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    module = importlib.import_module(SCENARIOS[name][0])
    main: Callable[[list[str]], int | None] = module.main
    return int(main(list(argv)) or 0)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="run a benchmark scenario (JSON lines)", description=__doc__
    )
    scenarios = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for name, (_, text) in SCENARIOS.items():
        sub = scenarios.add_parser(name, help=text, add_help=False,
                                   prefix_chars="\0")  # every option goes to the scenario
        sub.add_argument("argv", nargs=argparse.REMAINDER)
        sub.set_defaults(func=_dispatch(name))


def _dispatch(name: str) -> Callable[[argparse.Namespace], int]:
    def func(args: argparse.Namespace) -> int:
        return run_scenario(name, args.argv)

    return func
