"""Federated tasks by name: ``digits`` (digits-100) and ``synthetic`` (FedProx)."""

from __future__ import annotations

from fedmq.errors import ConfigError
from fedmq.tasks.base import Dataset, Params, Task, TrainResult
from fedmq.tasks.digits import digits_task, seconds_per_sample
from fedmq.tasks.linear import LinearTask, local_seed
from fedmq.tasks.synthetic import synthetic_task

TASKS = ("digits", "synthetic")


def get_task(name: str, num_devices: int | None = None, alpha: float = 0.5) -> LinearTask:
    """The task ``name``; ``num_devices``/``alpha`` re-partition it (defaults: 100/30)."""
    if name == "digits":
        return digits_task(num_devices or 100, alpha)
    if name == "synthetic":
        return synthetic_task(num_devices=num_devices or 30)
    raise ConfigError(f"unknown task {name!r}; choose one of {TASKS}")


__all__ = [
    "TASKS",
    "Dataset",
    "LinearTask",
    "Params",
    "Task",
    "TrainResult",
    "get_task",
    "local_seed",
    "seconds_per_sample",
]
