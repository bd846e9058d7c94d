"""``fedmq watch --save`` against a real mosquitto: the retained model, then live versions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from broker.mosquitto import Mosquitto
from demo.watch import WatchSettings, watch
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.chunks import ModelPublication, publication
from fedmq.messages import ModelMessage
from fedmq.tasks import get_task
from fedmq.tensors import encode_tensors
from fedmq.topics import Topics

pytestmark = pytest.mark.integration

TASK = get_task("digits")
TOPICS = Topics("digits")


def model(version: int) -> ModelPublication:
    params = {k: v + version for k, v in TASK.initial_params().items()}
    msg = ModelMessage("digits", version, 1.0, TASK.spec, encode_tensors(params))
    return publication(msg, max_packet=1536)  # in chunks


async def publish(client: aiomqtt.Client, pub: ModelPublication) -> None:
    """In the aggregator's order: chunks, manifest, meta."""
    for i, chunk in enumerate(pub.chunks):
        await client.publish(TOPICS.chunk(i), chunk, qos=1, retain=True)
    await client.publish(TOPICS.model, pub.model, qos=1, retain=True)
    await client.publish(TOPICS.meta, codec.encode(pub.meta), qos=1, retain=True)


def test_watch_saves_the_retained_and_then_each_live_version(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    settings = WatchSettings(BrokerURL.parse(f"mqtt://127.0.0.1:{mosquitto.port}"), "digits",
                             save_dir=tmp_path, count=3, timeout=30)
    lines: list[str] = []

    async def scenario() -> int:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await publish(client, model(0))
            watching = asyncio.create_task(watch(settings, lines.append))
            for version in (1, 2):
                while not any(f"model-v{version - 1}.pkl" in line for line in lines):
                    assert not watching.done(), lines
                    await asyncio.sleep(0.05)
                await publish(client, model(version))
            return await watching

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == 0
    assert [line.split()[0] for line in lines] == ["v0", "saved", "v1", "saved", "v2", "saved"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"model-v{v}.{ext}" for v in range(3) for ext in ("msgpack", "pkl")]
