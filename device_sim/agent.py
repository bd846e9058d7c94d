"""The device's decision logic as a sans-IO state machine, shared by every shell.

::

    idle ──eligible, new meta──▶ fetching ──model verified──▶ training ──▶ publishing
      ▲                            (skipped when the copy is current)          │
      └──── accepted / rejected ◀── waiting (ack timeout: resend same id) ◀────┘

The agent watches the tiny retained ``model/meta`` and subscribes to
``model`` (and ``model/chunk/+``) only while fetching, then unsubscribes, so
thousands of connections never each hold the model. A device trains at most
once per model version. A delta that could not be sent is kept across link
loss and sent on reconnect, unless the newest meta puts its base version
outside the aggregator's staleness window: then it is dropped (counted as
``stale``) and the device refetches. Malformed metas, models and acks are
counted (``Note``) and otherwise ignored: they never crash a device.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace

import numpy as np

from device_sim.agent_config import AgentConfig, Pending
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
from device_sim.fetch import Fetched, ModelFetch, Refused
from device_sim.policy import ALWAYS, Conditions
from fedmq import codec
from fedmq.errors import DecodeError, EncodeError, RejectReason
from fedmq.feedback import ErrorFeedback
from fedmq.limits import Limits
from fedmq.messages import Ack, Delta, DeviceStatus, ModelMeta
from fedmq.tasks import Params, local_seed
from fedmq.topics import TopicKind, Topics

log = logging.getLogger(__name__)
#: notes about broken input or local failures, logged as warnings (the rest is routine)
_BAD_INPUT = frozenset(
    {"malformed_meta", "malformed_model", "malformed_ack", "encode_failed", "training_failed"}
)


class DeviceAgent:
    """Feed events with :meth:`handle`; carry out the returned actions in order."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.topics = Topics(config.task, config.prefix)
        self.state = "idle"
        self.link_up = False
        self.conditions: Conditions = ALWAYS
        self._resend_after_meta = False  # on reconnect, learn the newest meta before resending
        self._measured = False  # no decision before the first Tick brings real conditions
        self.meta: ModelMeta | None = None
        self.model_version: int | None = None
        self.params: Params | None = None
        self.trained_base: int | None = None  # newest base version trained from
        self.pending: Pending | None = None
        self._ef = ErrorFeedback(config.encoding)
        self._fetch = ModelFetch(config.task, config.limits)
        self._fetch_started = 0.0
        self._last_skip: str | None = None
        self._seq = 0
        self._now = 0.0
        self._out: list[Action] = []

    # -- public ----------------------------------------------------------------

    @property
    def base_topics(self) -> tuple[str, ...]:
        return (self.topics.meta, self.topics.ack(self.config.device))

    @property
    def model_topics(self) -> tuple[str, ...]:
        return (self.topics.model, self.topics.chunk_filter)

    def status(self, now: float, *, online: bool = True) -> DeviceStatus:
        c = self.conditions
        up = online and c.online
        return DeviceStatus(
            self.config.task, self.config.device, online, now,
            self.state if online else "offline", c.battery, c.charging,
            c.network if up else "offline", c.metered, self.model_version,
        )

    def will_payload(self, now: float) -> bytes:
        """The offline status to register as the MQTT last will."""
        return codec.encode(self.status(now, online=False))

    def handle(self, event: Event) -> list[Action]:
        self._now = event.now
        self._out = []
        match event:
            case Tick(conditions=c):
                self.conditions, self._measured = c, True
                self._on_tick()
            case LinkUp():
                self._on_link_up()
            case LinkDown():
                self._on_link_down()
            case Received(kind=kind, payload=payload):
                self._on_message(kind, payload)
            case Trained():
                self._on_trained(event)
            case TrainingFailed(base_version=base, error=error):
                self.trained_base = base  # do not retry the same version in a hot loop
                self._note("training_failed", error)
                self._set_state("idle")
            case PublishDone(update_id=uid):
                self._on_published(uid)
            case PublishFailed(update_id=uid):
                if self.pending is not None and self.pending.update_id == uid:
                    self.pending = replace(self.pending, sent_at=None)
                    self._set_state("publishing")
        out, self._out = self._out, []
        return out

    # -- transitions -----------------------------------------------------------

    def _set_state(self, state: str) -> None:
        changed = state != self.state
        self.state = state
        if changed and self.link_up:
            self._send_status()

    def _send_status(self) -> None:
        payload = codec.encode(self.status(self._now))
        self._out.append(SendStatus(self.topics.status(self.config.device), payload))

    def _note(self, kind: str, detail: str = "") -> None:
        level = logging.WARNING if kind in _BAD_INPUT else logging.DEBUG
        log.log(level, "device %s: %s %s", self.config.device, kind, detail)
        self._out.append(Note(kind, detail))

    def _on_tick(self) -> None:
        p = self.pending
        if self._resend_after_meta:  # no meta came with the reconnect: send anyway
            self._resend_after_meta = False
            if p is not None and self.link_up and not self._drop_if_stale():
                self._send_pending()
        elif (
            p is not None and p.sent_at is not None and self.state == "waiting"
            and self._now - p.sent_at >= self.config.ack_timeout
        ):
            self._note("ack_timeout", p.update_id)
            self._send_pending()
        elif (
            self.state == "fetching"
            and self._now - self._fetch_started >= self.config.fetch_timeout
        ):
            self._note("fetch_timeout")
            self._out.append(Unsubscribe(self.model_topics))
            self._start_fetch()
        elif self.state == "idle":
            self._maybe_start()

    def _on_link_up(self) -> None:
        self.link_up = True
        self._out.append(Subscribe(self.base_topics))
        self._send_status()
        if self.state == "fetching":
            self._start_fetch()
        elif self.pending is not None:
            # the retained meta arrives right after subscribing: a delta it marks as
            # hopelessly stale is dropped instead of spending the uplink on it
            self._resend_after_meta = True

    def _on_link_down(self) -> None:
        self.link_up = False
        if self.state == "fetching":  # the broker forgot our subscriptions
            self._set_state("idle")

    def _maybe_start(self) -> None:
        meta = self.meta
        if meta is None or self.pending is not None or not self.config.has_data:
            return
        if not self._measured:
            return
        if self.trained_base is not None and meta.version <= self.trained_base:
            return  # one update per model version
        rounds = self.config.rounds
        if rounds is not None and not rounds.selects(self.config.device_index, meta.version):
            return  # not in this version's cohort (sync rounds)
        reason = self.config.policy.refusal(self.conditions, link_up=self.link_up)
        if reason is not None:
            if reason != self._last_skip:
                self._out.append(Skip(reason))
            self._last_skip = reason
            return
        self._last_skip = None
        if self.params is not None and self.model_version == meta.version:
            self._start_training()
        else:
            self._start_fetch()

    def _start_fetch(self) -> None:
        self._fetch_started = self._now
        self._fetch = ModelFetch(self.config.task, self.config.limits)
        self._set_state("fetching")
        self._out.append(Subscribe(self.model_topics))

    def _start_training(self) -> None:
        assert self.params is not None
        assert self.model_version is not None
        self._set_state("training")
        seed = local_seed(self.config.device_index, self.model_version)
        self._out.append(Train(self.model_version, self.params, seed))

    # -- messages --------------------------------------------------------------

    def _on_message(self, kind: TopicKind, payload: bytes) -> None:
        if kind is TopicKind.META:
            self._on_meta(payload)
        elif kind in (TopicKind.MODEL, TopicKind.CHUNK) and self.state == "fetching":
            self._on_fetch(self._fetch.feed(kind, payload, self.meta))
        elif kind is TopicKind.ACK:
            self._on_ack(payload)

    def _on_meta(self, payload: bytes) -> None:
        try:
            meta = _decode_meta(payload, self.config.limits)
        except DecodeError as exc:
            self._note("malformed_meta", str(exc))
            return
        if meta.task != self.config.task:
            self._note("malformed_meta", f"meta of task {meta.task!r}")
            return
        self.meta = meta
        if self.pending is not None and self._drop_if_stale():
            return
        if self._resend_after_meta and self.pending is not None and self.link_up:
            self._resend_after_meta = False
            self._send_pending()
            return
        if self.state == "fetching":
            self._on_fetch(self._fetch.on_meta(meta))
        elif self.state == "idle":
            self._maybe_start()

    def _on_fetch(self, got: Fetched | Refused | None) -> None:
        match got:
            case Refused(kind=kind, detail=detail):
                self._note(kind, detail)
            case Fetched(version=version, params=params):
                if self.params is not None and _shapes(self.params) != _shapes(params):
                    self._ef.reset()  # residuals of another architecture mean nothing now
                self.params, self.model_version = params, version
                self._out.append(Unsubscribe(self.model_topics))
                self._start_training()

    # -- updates ---------------------------------------------------------------

    def _on_trained(self, ev: Trained) -> None:
        base = self.params
        self.trained_base = ev.base_version
        if base is None or self.state != "training":
            self._set_state("idle")
            return
        delta = {k: ev.result.params[k] - base[k] for k in base}
        try:
            tensors = self._ef.encode(delta)
        except EncodeError as exc:
            self._note("encode_failed", str(exc))
            self._ef.reset()
            self._set_state("idle")
            return
        self._seq += 1
        uid = f"{int(self._now * 1000):x}-{self._seq}"
        msg = Delta(
            self.config.task, self.config.device, uid, ev.base_version,
            ev.result.num_samples, tensors, self._now, ev.result.loss,
        )
        self.pending = Pending(uid, ev.base_version, codec.encode(msg))
        if self._drop_if_stale():
            return
        if self.link_up:
            self._send_pending()
        else:
            self._set_state("publishing")

    def _send_pending(self) -> None:
        p = self.pending
        assert p is not None
        if not self.link_up:
            self._set_state("publishing")
            return
        self.pending = replace(p, attempts=p.attempts + 1, sent_at=None)
        self._set_state("publishing")
        topic = self.topics.delta(self.config.device)
        self._out.append(SendDelta(topic, p.payload, p.update_id, p.attempts + 1))

    def _on_published(self, uid: str) -> None:
        p = self.pending
        if p is not None and p.update_id == uid:
            self.pending = replace(p, sent_at=self._now)
            self._set_state("waiting")

    def _drop_if_stale(self) -> bool:
        """Drop the pending delta if the newest meta says it would be refused as too stale."""
        p, meta = self.pending, self.meta
        if p is None or meta is None or meta.max_staleness <= 0:
            return False
        if meta.version - p.base_version <= meta.max_staleness:
            return False
        self._drop_pending(Skip("stale"))
        return True

    def _drop_pending(self, why: Action) -> None:
        self.pending = None
        self._resend_after_meta = False
        self._ef.reset()  # the residual belonged to an update that never landed
        self._out.append(why)
        self._set_state("idle")
        self._maybe_start()

    def _on_ack(self, payload: bytes) -> None:
        try:
            ack = codec.decode(payload, Ack, self.config.limits)
        except DecodeError as exc:
            self._note("malformed_ack", str(exc))
            return
        p = self.pending
        if p is None or ack.update_id != p.update_id:
            return  # a late ack for an update already settled (we may have resent it)
        if ack.accepted or ack.reason is RejectReason.DUPLICATE:
            self.pending = None
            self._out.append(Note("accepted"))
            self._set_state("idle")
            self._maybe_start()
            return
        self._drop_pending(Note("rejected", str(ack.reason)))


@functools.lru_cache(maxsize=16)
def _decode_meta(payload: bytes, limits: Limits) -> ModelMeta:
    """Decode a meta once per process, not once per device: a fleet of N simulated
    devices receives the same bytes N times. ModelMeta is frozen, so sharing is safe;
    a DecodeError is raised anew each time (lru_cache does not keep exceptions)."""
    return codec.decode(bytes(payload), ModelMeta, limits)


def _shapes(params: Params) -> dict[str, tuple[int, ...]]:
    return {k: tuple(np.shape(v)) for k, v in params.items()}
