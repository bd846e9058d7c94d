"""What all simulated devices of one fleet share (settings, task, slots, metrics, clock)."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device_sim.events import Train
from device_sim.metrics import FleetMetrics
from device_sim.rounds import Rounds
from device_sim.settings import FleetSettings
from fedmq.tasks import Dataset, LinearTask, TrainResult


@dataclass
class Shared:
    settings: FleetSettings
    task: LinearTask
    speeds: npt.NDArray[np.float64]
    metrics: FleetMetrics
    training_slots: asyncio.Semaphore
    executor: Executor
    stop: asyncio.Event
    started: float  # wall monotonic origin of simulated time

    def sim_now(self) -> float:
        return (time.monotonic() - self.started) * self.settings.time_scale

    @functools.cached_property
    def rounds(self) -> Rounds | None:
        """The fleet's sync-round cohorts (FleetSettings.rounds), else None; built once,
        not per device (it sizes every partition)."""
        s, task = self.settings, self.task
        if not s.rounds:
            return None
        sizes = [len(task.device_data(i)) for i in range(task.num_devices)]
        return Rounds.for_sizes(s.concurrency, sizes, s.seed)


def train(task: LinearTask, action: Train, data: Dataset) -> TrainResult:
    """Run in the fleet's executor: the real training of one simulated device."""
    return task.train(action.params, data, seed=action.seed)
