"""The ``fedmq`` command: one entry point, a subcommand per part of the system.

Each part registers its own subcommand (``register(subparsers)``) and keeps
its settings to itself; they are imported only when the command line names
them, so ``fedmq watch`` does not pay for loading scikit-learn's trainers.
The services' options (``aggregator``, ``devices``, ``device``) also read an
environment variable each (``FEDMQ_<OPTION>``) so that compose files can configure
them without command lines; ``watch`` reads it only for its broker, task, prefix and
save directory, ``demo`` only for its broker.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from fedmq import __version__

#: subcommand -> module exposing ``register(subparsers)``
SUBCOMMANDS: dict[str, str] = {
    "aggregator": "aggregator.cli",
    "device": "device_sim.agent_cli",
    "devices": "device_sim.cli",
    "broker": "broker.cli",
    "demo": "demo.cli",
    "watch": "demo.watch_cli",
    "bench": "bench.cli",
}


def env_default(name: str, default: Any = None, cast: Callable[[str], Any] = str) -> Any:
    """Default for option ``--name`` from ``FEDMQ_NAME`` (dashes become underscores)."""
    raw = os.environ.get("FEDMQ_" + name.upper().replace("-", "_"))
    return default if raw is None or raw == "" else cast(raw)


def parse_flag(text: str) -> bool:
    """Booleans from the command line or the environment: 1/true/yes/on (any case)."""
    return text.strip().lower() in ("1", "true", "yes", "on")


def add_option(
    parser: argparse.ArgumentParser, name: str, default: Any, cast: Callable[[str], Any],
    text: str,
) -> None:
    """``--name`` with its ``FEDMQ_NAME`` environment default, shown in ``--help``.

    ``cast=bool`` makes a switch: ``--name`` alone means true, ``--name false`` works
    too, and so does ``FEDMQ_NAME=1``.
    """
    env = "FEDMQ_" + name.upper().replace("-", "_")
    help_text = f"{text} (env {env}, default {default})"
    if cast is bool:
        parser.add_argument(f"--{name}", nargs="?", const=True, type=parse_flag,
                            default=env_default(name, default, parse_flag), help=help_text)
        return
    parser.add_argument(f"--{name}", type=cast, default=env_default(name, default, cast),
                        help=help_text)


def add_common(parser: argparse.ArgumentParser, *, broker_default: str | None = None) -> None:
    """Options every networked subcommand shares."""
    parser.add_argument(
        "--broker",
        default=env_default("broker", broker_default),
        help="broker URL mqtt[s]://[user[:password]@]host[:port] (env FEDMQ_BROKER)",
    )
    parser.add_argument(
        "--task", default=env_default("task", "digits"), help="task name (env FEDMQ_TASK)"
    )
    parser.add_argument(
        "--prefix", default=env_default("prefix", "fedmq"), help="topic prefix (env FEDMQ_PREFIX)"
    )


def build_parser(names: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedmq", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fedmq {__version__}")
    parser.add_argument(
        "--log-level", default=env_default("log_level", "INFO"), help="(env FEDMQ_LOG_LEVEL)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in names if names is not None else SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[name])
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the named subcommand's module (fast start); --help loads them all.
    named = [a for a in argv if a in SUBCOMMANDS][:1]
    parser = build_parser(named or None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
