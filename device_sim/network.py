"""A simulated network link: an on/off Markov chain, a metered flag, uplink bandwidth.

Online and offline spells are exponential (a continuous-time two-state
Markov chain), so :meth:`Link.advance` is exact for any step size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedmq.errors import ConfigError


@dataclass(frozen=True, slots=True)
class NetworkModel:
    mean_online_s: float = 3600.0
    mean_offline_s: float = 300.0
    metered_fraction: float = 0.3  # devices on cellular
    uplink_median_bps: float = 2e6
    uplink_sigma: float = 1.0  # lognormal spread of uplink bandwidth across devices

    def __post_init__(self) -> None:
        if self.mean_online_s <= 0 or self.mean_offline_s <= 0 or self.uplink_median_bps <= 0:
            raise ConfigError("network spell lengths and bandwidth must be positive")
        if not 0.0 <= self.metered_fraction <= 1.0:
            raise ConfigError("metered_fraction must be in 0..1")


@dataclass(frozen=True, slots=True)
class Link:
    online: bool
    until: float  # simulated time of the next switch
    metered: bool
    uplink_bps: float

    @classmethod
    def initial(cls, model: NetworkModel, rng: np.random.Generator, now: float = 0.0) -> Link:
        p_on = model.mean_online_s / (model.mean_online_s + model.mean_offline_s)
        online = bool(rng.random() < p_on)  # start in the chain's stationary distribution
        metered = bool(rng.random() < model.metered_fraction)
        bps = float(model.uplink_median_bps * np.exp(rng.normal(0.0, model.uplink_sigma)))
        mean = model.mean_online_s if online else model.mean_offline_s
        return cls(online, now + float(rng.exponential(mean)), metered, bps)

    @property
    def network(self) -> str:
        if not self.online:
            return "offline"
        return "cellular" if self.metered else "wifi"

    def advance(self, model: NetworkModel, now: float, rng: np.random.Generator) -> Link:
        link = self
        while link.until <= now:
            online = not link.online
            mean = model.mean_online_s if online else model.mean_offline_s
            link = replace(link, online=online, until=link.until + float(rng.exponential(mean)))
        return link

    def transfer_seconds(self, nbytes: int) -> float:
        return 8.0 * nbytes / self.uplink_bps


def ideal_link() -> Link:
    """Always online, unmetered, instant."""
    return Link(True, float("inf"), False, float("inf"))
