"""A simulated battery: capacity, drain per sample trained and per byte sent, charging sessions.

Pure and time-driven: :meth:`Battery.advance` moves the state to a later
simulated time (any step size), switching between unplugged and charging
sessions whose lengths are exponential; all randomness comes from the
generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedmq.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BatteryModel:
    capacity_j: float = 54_000.0  # a phone's ~15 Wh
    joules_per_sample: float = 5.0  # per sample per epoch trained
    joules_per_byte: float = 1e-5  # radio cost of sending
    idle_watts: float = 0.3
    charge_watts: float = 10.0
    mean_unplugged_s: float = 6 * 3600.0
    mean_charging_s: float = 1.5 * 3600.0
    initial_low: float = 0.05  # initial level ~ U(initial_low, 1)
    initial_charging: float = 0.2  # probability of starting on the charger

    def __post_init__(self) -> None:
        if self.capacity_j <= 0 or self.mean_unplugged_s <= 0 or self.mean_charging_s <= 0:
            raise ConfigError("battery capacity and session lengths must be positive")
        if not 0.0 <= self.initial_low <= 1.0:
            raise ConfigError("initial_low must be in 0..1")


@dataclass(frozen=True, slots=True)
class Battery:
    level: float  # 0..1
    charging: bool
    until: float  # simulated time when the current session ends
    at: float = 0.0  # simulated time ``level`` refers to

    @classmethod
    def initial(cls, model: BatteryModel, rng: np.random.Generator, now: float = 0.0) -> Battery:
        charging = bool(rng.random() < model.initial_charging)
        level = float(rng.uniform(model.initial_low, 1.0))
        mean = model.mean_charging_s if charging else model.mean_unplugged_s
        return cls(level, charging, now + float(rng.exponential(mean)), now)

    def advance(self, model: BatteryModel, now: float, rng: np.random.Generator) -> Battery:
        """The battery at simulated time ``now`` (idle drain, charging, session switches)."""
        b = self
        while b.until <= now:
            b = b._run(model, b.until)
            charging = not b.charging
            mean = model.mean_charging_s if charging else model.mean_unplugged_s
            b = replace(b, charging=charging, until=b.until + float(rng.exponential(mean)))
        return b._run(model, now)

    def drain(self, model: BatteryModel, *, samples: int = 0, nbytes: int = 0) -> Battery:
        used = samples * model.joules_per_sample + nbytes * model.joules_per_byte
        return replace(self, level=max(0.0, self.level - used / model.capacity_j))

    def _run(self, model: BatteryModel, to: float) -> Battery:
        seconds = max(0.0, to - self.at)
        watts = model.charge_watts if self.charging else -model.idle_watts
        level = min(1.0, max(0.0, self.level + watts * seconds / model.capacity_j))
        return replace(self, level=level, at=max(to, self.at))
