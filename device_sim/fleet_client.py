"""An aiomqtt client tuned for thousands of connections in one event loop.

Stock aiomqtt costs every connection, even an idle one, a task waking every
second (its keepalive "misc" loop) and, per message, a ``Message`` object,
a queue hop and a task for whoever awaits ``client.messages``. At 10,000
connections the one-second wakeups alone are 10,000 task switches a second.
:class:`FleetClient` instead:

* runs paho's keepalive check every ``misc_interval`` seconds (a quarter of
  the keepalive is plenty: the broker allows 1.5 keepalives of silence);
* hands each message straight to ``deliver(topic, payload)`` from paho's
  read callback, so no per-device task waits for messages at all (and no
  incoming ``asyncio.Queue``, ~2.3 KB each, is allocated: ``client.messages``
  is not available).

Both hooks override private aiomqtt methods (pinned ``aiomqtt>=2.5,<3``);
:data:`HOOKS` names them and a unit test fails loudly if a release drops one.
:meth:`FleetClient.disconnected` waits for the connection to be lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as mqtt

Deliver = Callable[[str, bytes | bytearray], None]
HOOKS = ("_on_message", "_misc_loop", "_disconnected")


class _NoQueue:
    """Stands in for aiomqtt's incoming queue, which FleetClient never fills."""

    def __init__(self, maxsize: int = 0) -> None:
        pass

    def qsize(self) -> int:
        return 0

    async def get(self) -> aiomqtt.Message:
        raise RuntimeError("FleetClient hands messages to deliver(); it has no messages queue")

    def put_nowait(self, item: aiomqtt.Message) -> None:
        raise RuntimeError("FleetClient hands messages to deliver(); it has no messages queue")


class FleetClient(aiomqtt.Client):
    def __init__(
        self, *args: Any, deliver: Deliver, misc_interval: float = 15.0, **kwargs: Any
    ) -> None:
        no_queue = cast("type[asyncio.Queue[aiomqtt.Message]]", _NoQueue)
        super().__init__(*args, queue_type=no_queue, **kwargs)
        self._deliver = deliver
        self._misc_interval = max(1.0, misc_interval)

    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        self._deliver(message.topic, message.payload)

    async def _misc_loop(self) -> None:
        while self._client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(self._misc_interval)

    async def disconnected(self) -> None:
        """Return (never raise) once the connection is lost."""
        fut: asyncio.Future[None] = self._disconnected
        await asyncio.wait((fut,))
