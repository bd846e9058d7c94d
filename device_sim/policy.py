"""Whether a device may train now: battery, charging, link and metering.

Pure: the shells measure :class:`Conditions`; :class:`Policy` decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmq.errors import ConfigError

#: reasons a training opportunity is skipped (the ``reason`` label of the skip counter)
SKIP_REASONS = ("battery", "offline", "metered", "stale")


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a device knows about itself at one moment."""

    battery: float | None = None  # 0..1; None = no battery (mains powered)
    charging: bool | None = None
    online: bool = True  # the network is up (the MQTT link is tracked separately)
    metered: bool = False
    network: str = "wifi"


ALWAYS = Conditions()


@dataclass(frozen=True, slots=True)
class Policy:
    """Train when battery >= ``min_battery`` or charging, online, and (optionally) unmetered."""

    min_battery: float = 0.2
    require_unmetered: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_battery <= 1.0:
            raise ConfigError(f"min_battery must be in 0..1, got {self.min_battery}")

    def refusal(self, c: Conditions, *, link_up: bool = True) -> str | None:
        """None if the device may train, else the skip reason."""
        if not (link_up and c.online):
            return "offline"
        if c.battery is not None and c.battery < self.min_battery and not c.charging:
            return "battery"
        if self.require_unmetered and c.metered:
            return "metered"
        return None
