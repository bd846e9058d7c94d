"""FleetClient overrides private aiomqtt methods: fail loudly if a release renames them."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt

from device_sim.fleet_client import HOOKS, FleetClient


def test_the_private_aiomqtt_hooks_still_exist() -> None:
    client = asyncio.run(_make(aiomqtt.Client))
    for name in HOOKS:
        assert hasattr(client, name), f"aiomqtt.Client has no {name}: update FleetClient"
    for name in ("_on_message", "_misc_loop"):
        assert name in FleetClient.__dict__
        ours = inspect.signature(getattr(FleetClient, name)).parameters
        theirs = inspect.signature(getattr(aiomqtt.Client, name)).parameters
        assert list(ours) == list(theirs)


def test_messages_go_straight_to_deliver() -> None:
    got: list[tuple[str, bytes | bytearray]] = []
    client = asyncio.run(_make(FleetClient, deliver=lambda t, p: got.append((t, p))))
    msg = mqtt.MQTTMessage(topic=b"fedmq/digits/model/meta")
    msg.payload = b"x"
    assert isinstance(client, FleetClient)
    client._on_message(client._client, None, msg)
    assert got == [("fedmq/digits/model/meta", b"x")]
    assert client._queue.qsize() == 0


async def _make(cls: type[aiomqtt.Client], **kwargs: Any) -> aiomqtt.Client:
    return cls("127.0.0.1", **kwargs)  # aiomqtt binds the running loop; never connected
