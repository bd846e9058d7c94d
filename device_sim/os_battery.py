"""The real device's power state: Linux sysfs, else psutil if installed, else unknown.

Unknown means "no battery" (mains powered): the policy then never refuses
on battery grounds, so a board without a battery gauge is always eligible.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from device_sim.policy import Conditions

log = logging.getLogger(__name__)
SYSFS = Path("/sys/class/power_supply")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def sysfs_battery(root: Path = SYSFS) -> tuple[float, bool] | None:
    """(level 0..1, charging) of the first battery under ``root``, or None."""
    if not root.is_dir():
        return None
    mains_online = False
    found: tuple[float, bool] | None = None
    for supply in sorted(root.iterdir()):
        kind = _read(supply / "type")
        if kind == "Mains" and _read(supply / "online") == "1":
            mains_online = True
        elif kind == "Battery" and found is None:
            capacity = _read(supply / "capacity")
            if capacity is None or not capacity.isdigit():
                continue
            status = _read(supply / "status") or ""
            found = (min(int(capacity), 100) / 100.0, status in ("Charging", "Full"))
    if found is None:
        return None
    return found[0], found[1] or mains_online


def psutil_battery() -> tuple[float, bool] | None:
    try:
        psutil: Any = importlib.import_module("psutil")
    except ImportError:
        return None
    try:
        info = psutil.sensors_battery()
    except (OSError, RuntimeError) as exc:  # some platforms raise instead of returning None
        log.debug("psutil battery unavailable: %s", exc)
        return None
    if info is None:
        return None
    return min(float(info.percent), 100.0) / 100.0, bool(info.power_plugged)


def os_conditions(*, metered: bool = False) -> Conditions:
    """What the OS says about power right now (network is tracked by the MQTT link)."""
    reading = sysfs_battery() or psutil_battery()
    if reading is None:
        return Conditions(None, None, True, metered, "unknown")
    level, charging = reading
    return Conditions(level, charging, True, metered, "unknown")
