"""ModelFetch: a model is handed out only once it matches the newest meta."""

from __future__ import annotations

import numpy as np

from device_sim.fetch import Fetched, ModelFetch, Refused
from fedmq.chunks import ModelPublication, publication
from fedmq.limits import DEFAULT_LIMITS
from fedmq.messages import ModelMessage
from fedmq.tasks import get_task
from fedmq.tensors import encode_tensors
from fedmq.topics import TopicKind

TASK = get_task("digits")


def pub(version: int, task: str = "digits", max_packet: int | None = None) -> ModelPublication:
    msg = ModelMessage(task, version, 1.0, TASK.spec, encode_tensors(TASK.initial_params()))
    return publication(msg, max_packet=max_packet)


def test_fetched_carries_params_spec_and_the_verified_payload() -> None:
    p = pub(2, max_packet=1536)
    fetch = ModelFetch("digits", DEFAULT_LIMITS)
    got = [fetch.feed(TopicKind.CHUNK, c, p.meta) for c in p.chunks]
    assert got == [None] * len(p.chunks)  # chunks wait for their manifest
    fetched = fetch.feed(TopicKind.MODEL, p.model, p.meta)
    assert isinstance(fetched, Fetched)
    assert fetched.version == 2
    assert fetched.spec == TASK.spec
    assert len(fetched.payload) == p.payload_size
    for name, value in TASK.initial_params().items():
        np.testing.assert_allclose(fetched.params[name], value)
    assert "payload" not in repr(fetched)


def test_a_model_before_its_meta_is_held_until_the_meta_comes() -> None:
    old, new = pub(1), pub(2)
    fetch = ModelFetch("digits", DEFAULT_LIMITS)
    assert fetch.feed(TopicKind.MODEL, new.model, old.meta) == Refused(
        "hash_mismatch", "model does not match meta; waiting for a newer one")
    fetched = fetch.on_meta(new.meta)
    assert isinstance(fetched, Fetched)
    assert fetched.version == 2
    assert fetch.on_meta(new.meta) is None  # handed out once


def test_malformed_or_foreign_models_are_refused() -> None:
    fetch = ModelFetch("digits", DEFAULT_LIMITS)
    got = fetch.feed(TopicKind.MODEL, b"\x93garbage", None)
    assert isinstance(got, Refused)
    assert got.kind == "malformed_model"
    other = pub(1, task="other")
    got = fetch.feed(TopicKind.MODEL, other.model, other.meta)
    assert got == Refused("malformed_model", "model of task 'other'")
