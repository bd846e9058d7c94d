"""The pure device state machine: eligibility, fetch, verify, publish, acks, staleness."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

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
    Unsubscribe,
)
from device_sim.policy import Conditions
from fedmq import codec
from fedmq.chunks import ModelPublication, publication
from fedmq.errors import RejectReason
from fedmq.messages import Ack, Delta, DeviceStatus, ModelMessage
from fedmq.tasks import TrainResult, get_task
from fedmq.tensors import EncodingSpec, encode_tensors
from fedmq.topics import TopicKind

TASK = get_task("digits")
OK = Conditions(battery=0.9, charging=False)
T0 = 1_700_000_000.0


def model(version: int, *, max_staleness: int = 0, max_packet: int | None = None,
          scale: float = 0.0) -> ModelPublication:
    params = {k: v + scale for k, v in TASK.initial_params().items()}
    msg = ModelMessage("digits", version, T0, TASK.spec, encode_tensors(params))
    return publication(msg, max_packet=max_packet, max_staleness=max_staleness)


def meta(pub: ModelPublication) -> Received:
    return Received(T0, TopicKind.META, codec.encode(pub.meta))


def run(agent: DeviceAgent, *events: Event) -> list[Action]:
    return [a for e in events for a in agent.handle(e)]


def of(actions: list[Action], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def online_agent(**config: object) -> DeviceAgent:
    agent = DeviceAgent(AgentConfig("dev-1", "digits", device_index=3, **config))  # type: ignore[arg-type]
    run(agent, LinkUp(T0))
    return agent


def trained_agent(pub: ModelPublication, **config: object) -> tuple[DeviceAgent, Train]:
    """An agent that fetched ``pub`` and was asked to train."""
    agent = online_agent(**config)
    run(agent, meta(pub), Tick(T0, OK))
    acts = run(agent, Received(T0, TopicKind.MODEL, pub.model))
    (train,) = of(acts, Train)
    return agent, train


def result(train: Train, step: float = 0.01) -> Trained:
    params = {k: np.asarray(v) + step for k, v in train.params.items()}
    return Trained(T0 + 1, train.base_version, TrainResult(params, 12, 0.5))


def test_link_up_subscribes_to_meta_and_ack_only_and_publishes_status() -> None:
    agent = DeviceAgent(AgentConfig("dev-1", "digits"))
    acts = run(agent, LinkUp(T0))
    (sub,) = of(acts, Subscribe)
    assert sub.topics == ("fedmq/v1/digits/model/meta", "fedmq/v1/digits/ack/dev-1")
    (status,) = of(acts, SendStatus)
    assert codec.decode(status.payload, DeviceStatus).online
    will = codec.decode(agent.will_payload(T0), DeviceStatus)
    assert (will.online, will.state) == (False, "offline")


def test_low_battery_means_no_training() -> None:
    agent = online_agent()
    acts = run(agent, meta(model(1)), Tick(T0, Conditions(battery=0.1, charging=False)))
    assert of(acts, Skip) == [Skip("battery")]
    assert not of(acts, Subscribe)
    assert agent.state == "idle"
    # the same refusal is counted once, not on every tick
    assert not of(run(agent, Tick(T0 + 1, Conditions(battery=0.1, charging=False))), Skip)


def test_charging_device_with_low_battery_fetches_and_trains() -> None:
    pub = model(1)
    agent = online_agent()
    acts = run(agent, meta(pub), Tick(T0, Conditions(battery=0.1, charging=True)))
    assert Subscribe(agent.model_topics) in acts
    assert agent.state == "fetching"
    acts = run(agent, Received(T0, TopicKind.MODEL, pub.model))
    assert Unsubscribe(agent.model_topics) in acts
    (train,) = of(acts, Train)
    assert train.base_version == 1
    assert train.seed == 3 * 100003 + 1  # digits-100 epoch order of device 3 from version 1


def test_metered_link_is_skipped_only_when_the_policy_says_so() -> None:
    from device_sim.policy import Policy

    cond = Conditions(battery=1.0, metered=True, network="cellular")
    agent = online_agent(policy=Policy(require_unmetered=True))
    assert of(run(agent, meta(model(1)), Tick(T0, cond)), Skip) == [Skip("metered")]
    agent = online_agent()
    assert of(run(agent, meta(model(1)), Tick(T0, cond)), Subscribe)


def test_publish_ack_cycle_and_one_update_per_version() -> None:
    pub = model(1)
    agent, train = trained_agent(pub)
    acts = run(agent, result(train))
    (send,) = of(acts, SendDelta)
    delta = codec.decode(send.payload, Delta)
    assert (delta.base_version, delta.num_samples, delta.device) == (1, 12, "dev-1")
    assert np.allclose(delta.tensors["coef"].decode(), 0.01)
    run(agent, PublishDone(T0 + 2, send.update_id))
    assert agent.state == "waiting"
    ack = Ack("digits", "dev-1", send.update_id, True, 1, 0, 1.0)
    acts = run(agent, Received(T0 + 3, TopicKind.ACK, codec.encode(ack)), Tick(T0 + 4, OK))
    assert agent.state == "idle"
    assert agent.pending is None
    assert not of(acts, Subscribe)  # nothing new to train on: version 1 is done


def test_offline_during_publish_is_sent_on_reconnect() -> None:
    agent, train = trained_agent(model(1))
    run(agent, LinkDown(T0 + 0.5))
    acts = run(agent, result(train))
    assert not of(acts, SendDelta)
    assert agent.state == "publishing"
    assert not of(run(agent, LinkUp(T0 + 10)), SendDelta)  # first the newest meta
    (send,) = of(run(agent, meta(model(1))), SendDelta)
    assert send.update_id == agent.pending.update_id  # type: ignore[union-attr]


def test_reconnect_without_meta_resends_on_next_tick() -> None:
    agent, train = trained_agent(model(1))
    run(agent, LinkDown(T0 + 0.5), result(train), LinkUp(T0 + 10))
    assert of(run(agent, Tick(T0 + 11, OK)), SendDelta)


def test_failed_publish_is_retried_on_reconnect_with_the_same_id() -> None:
    agent, train = trained_agent(model(1))
    (first,) = of(run(agent, result(train)), SendDelta)
    run(agent, PublishFailed(T0 + 2, first.update_id), LinkDown(T0 + 2))
    (again,) = of(run(agent, LinkUp(T0 + 5), Tick(T0 + 6, OK)), SendDelta)
    assert (again.update_id, again.payload, again.attempt) == (
        first.update_id, first.payload, 2)


def test_no_ack_within_timeout_resends_same_update() -> None:
    agent, train = trained_agent(model(1), ack_timeout=30.0)
    (send,) = of(run(agent, result(train)), SendDelta)
    run(agent, PublishDone(T0 + 2, send.update_id))
    assert not of(run(agent, Tick(T0 + 20, OK)), SendDelta)
    acts = run(agent, Tick(T0 + 40, OK))
    (again,) = of(acts, SendDelta)
    assert again.update_id == send.update_id
    assert Note("ack_timeout", send.update_id) in acts


def test_hopelessly_stale_pending_delta_is_dropped_and_model_refetched() -> None:
    agent, train = trained_agent(model(1, max_staleness=3))
    run(agent, LinkDown(T0 + 0.5), result(train))
    assert agent.pending is not None
    # while offline the aggregator moved on far beyond its staleness window
    acts = run(agent, LinkUp(T0 + 100), meta(model(9, max_staleness=3)))
    assert Skip("stale") in acts
    assert not of(acts, SendDelta)
    assert agent.pending is None
    assert Subscribe(agent.model_topics) in acts  # refetch the newest model


def test_pending_delta_within_window_survives_newer_meta() -> None:
    agent, train = trained_agent(model(1, max_staleness=3))
    run(agent, LinkDown(T0 + 0.5), result(train), LinkUp(T0 + 5))
    assert of(run(agent, meta(model(3, max_staleness=3))), SendDelta)


def test_rejected_too_stale_drops_update_and_refetches() -> None:
    agent, train = trained_agent(model(1))
    (send,) = of(run(agent, result(train)), SendDelta)
    run(agent, PublishDone(T0 + 2, send.update_id), meta(model(2, scale=1.0)), Tick(T0, OK))
    ack = Ack("digits", "dev-1", send.update_id, False, 2, reason=RejectReason.TOO_STALE)
    acts = run(agent, Received(T0 + 3, TopicKind.ACK, codec.encode(ack)))
    assert Note("rejected", "too_stale") in acts
    assert Subscribe(agent.model_topics) in acts
    assert agent.state == "fetching"


def test_corrupt_model_is_ignored_and_counted() -> None:
    agent = online_agent()
    run(agent, meta(model(1)), Tick(T0, OK))
    for junk in (b"", b"\x00garbage", codec.encode(model(1).meta)):
        acts = run(agent, Received(T0, TopicKind.MODEL, junk))
        assert of(acts, Note)[0].kind == "malformed_model"
    assert agent.state == "fetching"
    assert not of(acts, Train)


def test_malformed_meta_and_ack_never_crash() -> None:
    agent = online_agent()
    acts = run(agent, Received(T0, TopicKind.META, b"\xc1"),
               Received(T0, TopicKind.ACK, b"{}"))
    assert [n.kind for n in of(acts, Note)] == ["malformed_meta", "malformed_ack"]
    assert agent.meta is None


def test_meta_hash_mismatch_waits_for_matching_meta() -> None:
    good = model(1)
    bad_meta = dataclasses.replace(good.meta, sha256=b"\x01" * 32)
    agent = online_agent()
    run(agent, Received(T0, TopicKind.META, codec.encode(bad_meta)), Tick(T0, OK))
    acts = run(agent, Received(T0, TopicKind.MODEL, good.model))
    assert Note("hash_mismatch", "model does not match meta; waiting for a newer one") in acts
    assert not of(acts, Train)
    # the matching meta arrives (e.g. it was published after the model): accept the model
    acts = run(agent, meta(good))
    assert of(acts, Train)


def test_fetch_timeout_resubscribes() -> None:
    agent = online_agent(fetch_timeout=10.0)
    run(agent, meta(model(1)), Tick(T0, OK))
    acts = run(agent, Tick(T0 + 11, OK))
    assert Unsubscribe(agent.model_topics) in acts
    assert Subscribe(agent.model_topics) in acts


def test_chunked_model_is_reassembled() -> None:
    pub = model(2, max_packet=1536)
    assert len(pub.chunks) > 1
    agent = online_agent()
    run(agent, meta(pub), Tick(T0, OK))
    acts = run(agent, Received(T0, TopicKind.MODEL, pub.model))
    for chunk in pub.chunks:
        acts += run(agent, Received(T0, TopicKind.CHUNK, chunk))
    (train,) = of(acts, Train)
    assert train.base_version == 2


def test_current_copy_is_not_fetched_again() -> None:
    pub = model(1)
    agent, train = trained_agent(pub)
    (send,) = of(run(agent, result(train)), SendDelta)
    run(agent, PublishDone(T0, send.update_id))
    # a rejected update of the current version: the copy is current, so train without fetching
    agent.trained_base = 0
    ack = Ack("digits", "dev-1", send.update_id, False, 1, reason=RejectReason.NORM_BOUND)
    acts = run(agent, Received(T0, TopicKind.ACK, codec.encode(ack)))
    assert of(acts, Train)
    assert not of(acts, Subscribe)


def test_lossy_encoding_carries_error_feedback() -> None:
    agent, train = trained_agent(model(1), encoding=EncodingSpec.parse("topk:0.1:q8"))
    rng = np.random.default_rng(0)
    params = {k: np.asarray(v) + rng.normal(size=np.shape(v)).astype(np.float32)
              for k, v in train.params.items()}
    run(agent, Trained(T0, 1, TrainResult(params, 5, None)))
    assert agent._ef.residual  # what topk dropped is kept for the next update


def test_device_without_data_never_trains() -> None:
    agent = online_agent(has_data=False)
    assert not of(run(agent, meta(model(1)), Tick(time.time(), OK)), Subscribe)


def test_a_fleet_decodes_each_meta_once_and_every_agent_still_reacts() -> None:
    pub = model(1)
    agents = [online_agent(), online_agent()]
    payload = codec.encode(pub.meta)
    for agent in agents:  # equal bytes, distinct objects: as N connections receive them
        acts = run(agent, Tick(T0, OK), Received(T0, TopicKind.META, bytes(bytearray(payload))))
        assert agent.state == "fetching"
        assert of(acts, Subscribe)
    assert agents[0].meta is agents[1].meta  # one decode, shared (ModelMeta is frozen)


def test_a_malformed_meta_is_noted_by_every_agent_not_cached() -> None:
    for agent in (online_agent(), online_agent()):
        acts = run(agent, Received(T0, TopicKind.META, b"\xc1junk"))
        assert [n.kind for n in of(acts, Note)] == ["malformed_meta"]
