"""A tiny stand-in aggregator for edge tests: retained model+meta, acks, FedBuff folding."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiomqtt
import numpy as np

from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.chunks import publication
from fedmq.errors import DecodeError, RejectReason
from fedmq.messages import Ack, Delta, ModelMessage
from fedmq.tasks import Params, get_task
from fedmq.tensors import encode_tensors
from fedmq.topics import Topics


@dataclass
class StandIn:
    url: str
    task_name: str = "digits"
    buffer: int = 5
    max_staleness: int = 0
    max_packet: int | None = None
    target_version: int = 10
    partitions: int | None = None
    lr: float = 1.0
    version: int = 0
    accuracies: list[float] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    deltas: list[Delta] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self) -> None:
        self.task = get_task(self.task_name, self.partitions)
        self.topics = Topics(self.task_name)
        self.params: Params = self.task.initial_params()
        self._buf: list[tuple[Delta, int]] = []
        self.accuracies.append(self.task.evaluate(self.params))

    async def publish_model(self, client: aiomqtt.Client) -> None:
        msg = ModelMessage(
            self.task_name, self.version, time.time(), self.task.spec,
            encode_tensors(self.params),
        )
        pub = publication(
            msg, max_packet=self.max_packet, buffer=self.buffer, max_staleness=self.max_staleness
        )
        for i, chunk in enumerate(pub.chunks):
            await client.publish(self.topics.chunk(i), chunk, qos=1, retain=True)
        await client.publish(self.topics.model, pub.model, qos=1, retain=True)
        await client.publish(self.topics.meta, codec.encode(pub.meta), qos=1, retain=True)

    async def run(self, stop: asyncio.Event) -> None:
        url = BrokerURL.parse(self.url)
        async with aiomqtt.Client(url.host, url.port, identifier="standin") as client:
            await client.subscribe(self.topics.delta_filter, qos=1)
            await self.publish_model(client)
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                await self._on_delta(client, message.payload)
                if self.version >= self.target_version:
                    stop.set()
                    return

    async def _on_delta(self, client: aiomqtt.Client, payload: bytes) -> None:
        try:
            delta = codec.decode(payload, Delta)
        except DecodeError:
            return
        self.deltas.append(delta)
        s = self.version - delta.base_version
        key = (delta.device, delta.update_id)
        reason = None
        if key in self.seen:
            reason = RejectReason.DUPLICATE
        elif s < 0 or (self.max_staleness and s > self.max_staleness):
            reason = RejectReason.TOO_STALE
        self.seen.add(key)
        ack = Ack(self.task_name, delta.device, delta.update_id, reason is None, self.version,
                  s, None, reason)
        if reason is None:
            self._buf.append((delta, s))
        else:
            self.rejected += 1
        await client.publish(self.topics.ack(delta.device), codec.encode(ack), qos=1)
        if len(self._buf) >= self.buffer:
            self._fold()
            await self.publish_model(client)

    def _fold(self) -> None:
        total = sum(d.num_samples for d, _ in self._buf)
        for name in self.params:
            acc = np.zeros_like(self.params[name])
            for d, s in self._buf:
                acc += (1 + s) ** -0.5 * d.num_samples * d.tensors[name].decode()
            self.params[name] = self.params[name] + self.lr * acc / total
        self._buf.clear()
        self.version += 1
        self.accuracies.append(self.task.evaluate(self.params))
