"""The real-device shell: the device agent under paho-mqtt 2.x.

paho's network thread (``loop_start``) keeps the connection and reconnects
by itself; its callbacks only put events on a bounded queue. The main thread
owns the agent: it takes events (or a tick every ``tick`` seconds), trains
in place (the network thread keeps the link alive meanwhile) and publishes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_sim.agent import DeviceAgent
from device_sim.agent_config import AgentConfig
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
from device_sim.policy import Conditions
from fedmq.brokerurl import BrokerURL
from fedmq.tasks import Dataset, Task

log = logging.getLogger(__name__)
INBOX = 256  # events a busy device keeps; more are dropped (and logged)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    broker: BrokerURL
    agent: AgentConfig
    tick: float = 1.0
    keepalive: int = 60
    reconnect_min: int = 1
    reconnect_max: int = 60


@dataclass(frozen=True, slots=True)
class _Puback:
    """paho's word that publish ``mid`` completed; the agent thread maps it to an update.

    paho calls ``on_publish`` holding its outgoing-message lock, so that callback must
    not wait for a lock the agent thread holds around ``publish()`` (which takes
    paho's): that order deadlocked. Only the agent thread touches the mid map, and a
    PUBACK that beats ``publish()``'s return waits in the inbox until it has.
    """

    mid: int
    failed: bool


class PahoAgent:
    """Run with :meth:`run` until ``stop`` is set; counts are in :attr:`counts`."""

    def __init__(self, settings: AgentSettings, task: Task, data: Dataset,
                 conditions: Callable[[], Conditions]) -> None:
        self.settings = settings
        self.task = task
        self.data = data
        self.conditions = conditions
        self.agent = DeviceAgent(settings.agent)
        self.counts: dict[str, int] = {}
        self._inbox: queue.Queue[Event | _Puback] = queue.Queue(INBOX)
        self._mids: dict[int, str] = {}  # publish mid -> update id (agent thread only)
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        s, cfg = self.settings, self.settings.agent
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.device,
                             clean_session=True)
        if s.broker.username:
            client.username_pw_set(s.broker.username, s.broker.password)
        if s.broker.tls:
            client.tls_set()
        client.will_set(self.agent.topics.status(cfg.device),
                        self.agent.will_payload(time.time()), qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- paho's thread: only enqueue ----------------------------------------------

    def _put(self, event: Event | _Puback) -> None:
        try:
            self._inbox.put_nowait(event)
        except queue.Full:
            log.warning("device %s: inbox full, event dropped", self.settings.agent.device)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    props: Any = None) -> None:
        if not reason.is_failure:
            self._put(LinkUp(time.time()))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       props: Any = None) -> None:
        self._put(LinkDown(time.time()))

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parsed = self.agent.topics.parse(msg.topic)
        if parsed is not None:
            self._put(Received(time.time(), parsed.kind, bytes(msg.payload)))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    props: Any = None) -> None:
        self._put(_Puback(mid, bool(reason.is_failure)))  # e.g. MQTT 5 "not authorized"

    # -- main thread: the agent -------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        self.client.connect_async(s.broker.host, s.broker.port, keepalive=s.keepalive)
        self.client.loop_start()
        try:
            last_tick = 0.0
            while not stop.is_set():
                try:
                    got: Event | _Puback | None = self._inbox.get(timeout=s.tick)
                except queue.Empty:
                    got = None
                event = self._published(got) if isinstance(got, _Puback) else got
                if event is not None:
                    self._step(event)
                if time.monotonic() - last_tick >= s.tick:
                    last_tick = time.monotonic()
                    self._step(Tick(time.time(), self.conditions()))
        finally:
            if self.agent.link_up:
                info = self.client.publish(self.agent.topics.status(s.agent.device),
                                           self.agent.will_payload(time.time()), 1, True)
                info.wait_for_publish(timeout=2.0)
            self.client.disconnect()
            self.client.loop_stop()

    def _published(self, puback: _Puback) -> Event | None:
        """The agent's event for a completed publish (None: not a delta of ours)."""
        uid = self._mids.pop(puback.mid, None)
        if uid is None:
            return None
        if puback.failed:
            return PublishFailed(time.time(), uid)
        return PublishDone(time.time(), uid)

    def _step(self, event: Event) -> None:
        events = [event]
        while events:
            for action in self.agent.handle(events.pop(0)):
                follow = self._do(action)
                if follow is not None:
                    events.append(follow)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _do(self, action: Action) -> Event | None:
        match action:
            case Subscribe(topics=topics):
                self.client.subscribe([(t, 1) for t in topics])
            case Unsubscribe(topics=topics):
                self.client.unsubscribe(list(topics))
            case SendStatus(topic=topic, payload=payload):
                self.client.publish(topic, payload, qos=1, retain=True)
            case SendDelta():
                return self._send(action)
            case Train():
                try:
                    result = self.task.train(action.params, self.data, seed=action.seed)
                except (ValueError, ArithmeticError) as exc:
                    return TrainingFailed(time.time(), action.base_version, str(exc))
                self._count("trained")
                return Trained(time.time(), action.base_version, result)
            case Skip(reason=reason):
                self._count(f"skipped_{reason}")
            case Note(kind=kind):
                self._count(kind)
        return None

    def _send(self, action: SendDelta) -> Event | None:
        info = self.client.publish(action.topic, action.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return PublishFailed(time.time(), action.update_id)
        self._mids[info.mid] = action.update_id  # before its _Puback is taken: same thread
        self._count("published")
        return None
