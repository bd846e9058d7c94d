"""One simulated device under aiomqtt: its own connection, battery, link and speed.

Two tasks per device: :meth:`SimDevice.link` keeps the MQTT connection while
the simulated network is up (and drops it, publishing the offline status the
last will would, when it goes down); :meth:`SimDevice.drive` feeds the
agent events (messages, ticks, training results) and carries out its
actions. Both sleep until something happens (no polling), so an idle device
costs next to nothing: that is what lets one process hold 10,000.
Simulated time runs ``time_scale`` times faster than the wall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import aiomqtt
import numpy as np

from device_sim.agent import DeviceAgent
from device_sim.agent_config import AgentConfig
from device_sim.battery import Battery
from device_sim.compute import training_seconds
from device_sim.events import (
    Action,
    Event,
    LinkDown,
    LinkUp,
    Note,
    PublishDone,
    PublishFailed,
    Received,
    SendDelta,
    SendStatus,
    Skip,
    Subscribe,
    Tick,
    Train,
    Trained,
    TrainingFailed,
    Unsubscribe,
)
from device_sim.fleet_client import FleetClient
from device_sim.fleet_shared import Shared, train
from device_sim.inbox import Inbox
from device_sim.network import Link, ideal_link
from device_sim.policy import Conditions
from fedmq.backoff import backoff_delay
from fedmq.tasks import Dataset

log = logging.getLogger(__name__)
INBOX = 64  # messages a busy device keeps; the rest are dropped and counted


class SimDevice:
    def __init__(self, k: int, shared: Shared) -> None:
        s = shared.settings
        self.shared = shared
        self.partition = k % shared.task.num_devices
        self.data: Dataset = shared.task.device_data(self.partition)
        self.device = s.device_id(k)
        self.agent = DeviceAgent(AgentConfig(
            self.device, s.task, self.partition, s.prefix, s.encoding, s.policy,
            ack_timeout=s.ack_timeout, has_data=len(self.data) > 0, rounds=shared.rounds,
        ))
        self._k = k
        self._rng: np.random.Generator | None = None  # made on first use (see rng)
        now = shared.sim_now()
        self.battery = None if s.battery is None else Battery.initial(s.battery, self.rng, now)
        self.link_state: Link = (
            ideal_link() if s.network is None else Link.initial(s.network, self.rng, now)
        )
        self.client: FleetClient | None = None
        self._inbox = Inbox(INBOX)
        self._meta_topic = self.agent.topics.meta
        self._next_tick = 0.0  # loop time the next Tick is due
        self._must_tick = True  # the agent needs a Tick even if idle (start, link change)
        self._slot = False  # holds one of the fleet's training slots
        self._shown: str | None = None
        self._online_shown = False
        self._charging_shown = False

    # -- simulated environment --------------------------------------------------

    @property
    def rng(self) -> np.random.Generator:
        """This device's random stream; an ideal device draws only on reconnect
        backoff, so most never pay the ~1 KB a Generator costs."""
        if self._rng is None:
            self._rng = np.random.default_rng([self.shared.settings.seed, self._k])
        return self._rng

    def conditions(self) -> Conditions:
        s, now = self.shared.settings, self.shared.sim_now()
        if s.network is not None:
            self.link_state = self.link_state.advance(s.network, now, self.rng)
        battery, charging = None, None
        if self.battery is not None and s.battery is not None:
            self.battery = self.battery.advance(s.battery, now, self.rng)
            battery, charging = self.battery.level, self.battery.charging
            self.shared.metrics.battery.labels(s.task).observe(battery)
        dead = battery is not None and battery <= 0.0 and not charging  # switched off
        online = self.link_state.online and not dead
        network = self.link_state.network if online else "offline"
        self._show_power(bool(charging))
        return Conditions(battery, charging, online, self.link_state.metered, network)

    def _show_power(self, charging: bool) -> None:
        view = self.shared.metrics.view
        if charging != self._charging_shown:
            view.charging += 1 if charging else -1
            self._charging_shown = charging

    def _show_state(self) -> None:
        state = self.agent.state if self.client is not None else "offline"
        self.shared.metrics.moved(self._shown, state)
        self._shown = state
        online = self.client is not None
        if online != self._online_shown:
            self.shared.metrics.view.online += 1 if online else -1
            self._online_shown = online

    def forget(self) -> None:
        """Take this device out of the live counts (it stopped)."""
        self._free_slot()
        self.shared.metrics.moved(self._shown, None)
        self.shared.metrics.view.online -= int(self._online_shown)
        self.shared.metrics.view.charging -= int(self._charging_shown)

    # -- the connection ---------------------------------------------------------

    async def link(self) -> None:
        s, attempt = self.shared.settings, 0
        # loops also watch ``stop``: aiomqtt's __aexit__ can turn a cancellation into MqttError
        while not self.shared.stop.is_set():
            if not self.conditions().online:
                await asyncio.sleep(self._wall_until(self.link_state.until))
                continue
            will = aiomqtt.Will(
                self.agent.topics.status(self.device), self.agent.will_payload(time.time()),
                1, True,
            )
            try:
                async with FleetClient(
                    s.broker.host, s.broker.port, username=s.broker.username,
                    password=s.password(self.device), identifier=self.device, will=will,
                    clean_session=True, keepalive=s.keepalive, timeout=30.0,
                    deliver=self._deliver, misc_interval=s.keepalive / 4,
                ) as client:
                    attempt = 0
                    self.client = client
                    self._push(LinkUp(time.time()))
                    await self._hold(client)
                    self.client = None
                    self._push(LinkDown(time.time()))
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(will.topic, self.agent.will_payload(time.time()),
                                             qos=1, retain=True)
            except aiomqtt.MqttError as exc:
                log.debug("%s: connection lost: %s", self.device, exc)
                if self.shared.stop.is_set():
                    return
                if self.client is not None:
                    self.client = None
                    self._push(LinkDown(time.time()))
                await asyncio.sleep(
                    backoff_delay(attempt, base=0.5, jitter=1.0, u=float(self.rng.random()))
                )
                attempt += 1

    async def _hold(self, client: FleetClient) -> None:
        """Wait, without polling, until the connection drops or the simulated network goes down.

        The link's next switch time is known, so only a device whose battery can die
        (not scheduled) checks every ``4 * tick``; an ideal device just waits.
        """
        s = self.shared.settings
        if s.network is None and s.battery is None:  # always online: no timer at all
            await client.disconnected()
            raise aiomqtt.MqttError("disconnected")
        while self.conditions().online and not self.shared.stop.is_set():
            wait = self._wall_until(self.link_state.until)
            if s.battery is not None:
                wait = min(wait, 4 * s.tick)
            try:
                async with asyncio.timeout(max(wait, 0.01)):
                    await client.disconnected()
            except TimeoutError:
                continue
            raise aiomqtt.MqttError("disconnected")

    def _deliver(self, topic: str, payload: bytes | bytearray) -> None:
        """paho's read callback: queue the message for :meth:`drive` (never blocks)."""
        if topic == self._meta_topic:
            # the meta is retained latest-state: a device still busy with the previous
            # one only needs the newest, so metas never pile up in (or overflow) the inbox
            self._inbox.put_meta(bytes(payload))
            return
        kind = self.agent.topics.parse(topic)
        if kind is None:
            return
        if not self._inbox.put(Received(time.time(), kind.kind, bytes(payload))):
            self.shared.metrics.problem("inbox_full")

    def _push(self, event: LinkUp | LinkDown) -> None:
        self._inbox.put(event, force=True)
        self._must_tick = True  # the agent decides nothing on a link change alone

    def _wall_until(self, sim_time: float) -> float:
        left = (sim_time - self.shared.sim_now()) / self.shared.settings.time_scale
        return min(max(left, 0.0), 3600.0)

    # -- the driver -------------------------------------------------------------

    async def drive(self) -> None:
        """Feed the agent its inbox, and a Tick whenever something can have changed.

        Event-driven: the task sleeps until a message, link change or training result
        arrives, or until the next Tick is due. Ticks run timeouts and re-check
        conditions; an idle device whose conditions cannot change (no battery or network
        model) gets none after the first, since a Tick would only repeat its last decision.
        """
        loop = asyncio.get_running_loop()
        while not self.shared.stop.is_set():
            while self._inbox:
                await self._step(self._inbox.pop())
            if self._wants_tick() and loop.time() >= self._next_tick:
                self._next_tick = loop.time() + self.shared.settings.tick
                self._must_tick = False
                await self._step(Tick(time.time(), self.conditions()))
                continue
            await self._inbox.wait(self._next_tick if self._wants_tick() else None)

    def _wants_tick(self) -> bool:
        s = self.shared.settings
        changing = s.battery is not None or s.network is not None
        return changing or self._must_tick or self.agent.state != "idle"

    async def _step(self, event: Event) -> None:
        events: deque[Event] = deque([event])
        while events:
            for action in self.agent.handle(events.popleft()):
                follow = await self._do(action)
                if follow is not None:
                    events.append(follow)
            self._show_state()
            if self.agent.state not in ("fetching", "training"):
                self._free_slot()

    # A training slot is taken when the device starts fetching the model it will train
    # on, and freed as soon as it is neither fetching nor training (done, offline, fetch
    # timed out). Taking it after the fetch instead would let every idle device fetch
    # version v and queue up holding it: the updates would arrive many versions stale,
    # not "10 devices training at any moment, the next one starting when one finishes".

    async def _take_slot(self) -> None:
        if not self._slot:
            slots = self.shared.training_slots
            queued = slots.locked()
            await slots.acquire()
            if queued:  # maybe for minutes: the Tick that fell due meanwhile would find the
                # fetch timed out and resubscribe to the model just as it arrives
                self._next_tick = asyncio.get_running_loop().time() + self.shared.settings.tick
            self._slot = True

    def _free_slot(self) -> None:
        if self._slot:
            self._slot = False
            self.shared.training_slots.release()

    async def _do(self, action: Action) -> Event | None:
        m = self.shared.metrics
        match action:
            case Subscribe(topics=topics) if self.client is not None:
                if topics == self.agent.model_topics:
                    await self._take_slot()
                client = self.client  # None if the link dropped while we waited for a slot
                # the meta is retained latest-state: QoS 0 spares every device a PUBACK
                # per version (a lost one is superseded by the next, or resent on reconnect)
                qos = [(t, 0 if t == self._meta_topic else 1) for t in topics]
                if client is not None:
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.subscribe(qos)
            case Unsubscribe(topics=topics) if self.client is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    await self.client.unsubscribe(list(topics))
            case SendStatus(topic=topic, payload=payload) if self.client is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    await self.client.publish(topic, payload, qos=1, retain=True)
            case Train():
                return await self._train(action)
            case SendDelta():
                return await self._send(action)
            case Skip(reason=reason):
                m.skip(reason)
            case Note(kind="accepted"):
                m.view.accepted += 1
            case Note(kind=kind):
                m.problem(kind)
                m.view.rejected += kind == "rejected"
        return None

    async def _train(self, action: Train) -> Event:
        s, sh = self.shared.settings, self.shared
        seconds = training_seconds(
            float(sh.speeds[self.partition]), len(self.data), sh.task.epochs
        )
        await self._take_slot()  # already held unless the model needed no fetch
        try:
            self._show_state()
            await asyncio.sleep(seconds / s.time_scale)
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    sh.executor, train, sh.task, action, self.data
                )
            except (ValueError, ArithmeticError) as exc:
                return TrainingFailed(time.time(), action.base_version, str(exc))
        finally:
            self._free_slot()
        sh.metrics.training_seconds.labels(s.task).observe(seconds)
        if self.battery is not None and s.battery is not None:
            self.battery = self.battery.drain(s.battery, samples=len(self.data) * sh.task.epochs)
        return Trained(time.time(), action.base_version, result)

    async def _send(self, action: SendDelta) -> Event:
        s = self.shared.settings
        nbytes = len(action.payload)
        await asyncio.sleep(self.link_state.transfer_seconds(nbytes) / s.time_scale)
        client = self.client
        if client is None:
            return PublishFailed(time.time(), action.update_id)
        try:
            await client.publish(action.topic, action.payload, qos=1)
        except aiomqtt.MqttError:
            return PublishFailed(time.time(), action.update_id)
        if self.battery is not None and s.battery is not None:
            self.battery = self.battery.drain(s.battery, nbytes=nbytes)
        self.shared.metrics.published(nbytes)
        sent = self.shared.metrics.view.updates_published
        if s.max_updates is not None and sent >= s.max_updates:
            self.shared.stop.set()
        return PublishDone(time.time(), action.update_id)
