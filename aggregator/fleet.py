"""The fleet as seen through retained ``status/<device>`` messages (pure)."""

from __future__ import annotations

from collections import Counter

from fedmq import codec
from fedmq.codec import Payload
from fedmq.messages import DeviceStatus


class Fleet:
    """Each device's last reported state; ``offline`` once it (or its will) says so."""

    def __init__(self) -> None:
        self._state: dict[str, str] = {}

    def on_status(self, device: str, payload: Payload) -> None:
        """Feed one status payload; an empty one (retained message cleared) forgets the
        device. Raises DecodeError on junk."""
        if not payload:
            self._state.pop(device, None)
            return
        status = codec.decode(payload, DeviceStatus)
        self._state[device] = status.state if status.online else "offline"

    def counts(self) -> dict[str, int]:
        return dict(Counter(self._state.values()))
