"""``fedmq watch``'s Watcher: one line per new version, models saved once they match their meta."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from demo.watch import Watcher, WatchSettings
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.chunks import ModelPublication, publication
from fedmq.errors import DecodeError
from fedmq.messages import ModelMessage
from fedmq.tasks import get_task
from fedmq.tensors import encode_tensors
from fedmq.topics import TopicKind

TASK = get_task("digits")


def model(version: int, *, max_packet: int | None = None, task: str = "digits"
          ) -> ModelPublication:
    params = {k: v + version for k, v in TASK.initial_params().items()}
    msg = ModelMessage(task, version, 1.0, TASK.spec, encode_tensors(params),
                       {"accuracy": 0.5, "updates": 3})
    return publication(msg, max_packet=max_packet)


def watcher(save_dir: Path | None = None, count: int = 0) -> tuple[Watcher, list[str]]:
    lines: list[str] = []
    settings = WatchSettings(BrokerURL.parse("mqtt://127.0.0.1:1883"), "digits",
                             save_dir=save_dir, count=count)
    return Watcher(settings, lines.append), lines


def deliver(w: Watcher, pub: ModelPublication) -> None:
    """The aggregator's publish order: chunks, model (or manifest), meta."""
    for chunk in pub.chunks:
        w.on_model_part(TopicKind.CHUNK, chunk)
    w.on_model_part(TopicKind.MODEL, pub.model)
    w.on_meta(codec.encode(pub.meta))


def test_a_line_per_new_version_only() -> None:
    w, lines = watcher(count=2)
    w.on_meta(codec.encode(model(1).meta))
    w.on_meta(codec.encode(model(1).meta))
    w.on_meta(codec.encode(model(0).meta))
    assert not w.done
    w.on_meta(codec.encode(model(2).meta))
    assert [line.split()[0] for line in lines] == ["v1", "v2"]
    assert "accuracy 0.5000" in lines[0]
    assert "updates 3" in lines[0]
    assert w.done


def test_without_save_model_payloads_are_ignored() -> None:
    w, lines = watcher()
    w.on_model_part(TopicKind.MODEL, b"not even msgpack")
    assert lines == []


def test_retained_meta_then_model_is_saved_as_estimator(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path, count=1)
    pub = model(0)
    w.on_meta(codec.encode(pub.meta))
    assert not w.done  # counted, but not on disk yet
    w.on_model_part(TopicKind.MODEL, pub.model)
    assert lines[1] == f"       saved {tmp_path / 'model-v0.pkl'}"
    assert (tmp_path / "model-v0.msgpack").read_bytes() == pub.model
    est = pickle.loads((tmp_path / "model-v0.pkl").read_bytes())
    assert est.predict(np.zeros((1, est.coef_.shape[1]))).shape == (1,)
    assert w.done


def test_live_versions_arrive_before_their_meta_and_are_saved_after_it(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path, count=3)
    for version in range(3):
        deliver(w, model(version))
    assert sorted(p.name for p in tmp_path.glob("*.pkl")) == [
        "model-v0.pkl", "model-v1.pkl", "model-v2.pkl"]
    assert [line.split()[0] for line in lines] == ["v0", "saved", "v1", "saved", "v2", "saved"]
    assert w.done


def test_chunked_models_are_reassembled(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path)
    pub = model(4, max_packet=1536)
    assert len(pub.chunks) > 1
    w.on_meta(codec.encode(pub.meta))
    for chunk in reversed(pub.chunks):
        w.on_model_part(TopicKind.CHUNK, chunk)
    assert len(lines) == 1  # the chunks wait for their manifest
    w.on_model_part(TopicKind.MODEL, pub.model)
    assert lines[-1] == f"       saved {tmp_path / 'model-v4.pkl'}"
    saved = (tmp_path / "model-v4.msgpack").read_bytes()
    assert hashlib.sha256(saved).digest() == pub.meta.sha256


def test_a_model_not_matching_the_meta_is_not_saved(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path)
    w.on_meta(codec.encode(model(1).meta))
    w.on_model_part(TopicKind.MODEL, model(0).model)
    assert list(tmp_path.iterdir()) == []
    assert len(lines) == 1


def test_a_malformed_model_raises_decode_error(tmp_path: Path) -> None:
    w, _ = watcher(tmp_path)
    with pytest.raises(DecodeError):
        w.on_model_part(TopicKind.MODEL, b"\x93garbage")
    with pytest.raises(DecodeError):
        w.on_meta(b"\x93garbage")


def test_a_model_before_any_meta_is_saved_once_its_meta_comes(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path)
    pub = model(3)
    w.on_model_part(TopicKind.MODEL, pub.model)
    assert lines == []
    w.on_meta(codec.encode(pub.meta))
    assert lines[1] == f"       saved {tmp_path / 'model-v3.pkl'}"
    assert w.saved_version == 3
