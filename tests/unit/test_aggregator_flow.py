"""Per-version staleness stats, their durability, protocol fallback and the outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aggregator.core import Aggregator, Verdict
from aggregator.mqtt import V5, V311, ProtocolChoice
from aggregator.outbox import Outbox
from aggregator.publishing import ModelSnapshot
from aggregator.staleness import Staleness
from aggregator.store import decode_state, encode_state
from aggregator.worker import BatchResult
from fedmq.messages import Ack
from tests.unit.test_aggregator_core import delta, make


def test_each_version_reports_its_updates_and_staleness() -> None:
    core = make(buffer=3, staleness=Staleness("constant"), max_staleness=5)
    for uid in ("a", "b"):
        core.offer("sim-00001", delta(uid), 0.0)
    core.flush(0.0, 2000.0)  # version 1 from two fresh updates
    assert core.metrics == {"updates": 2.0, "staleness_mean": 0.0, "staleness_max": 0.0}
    core.offer("sim-00001", delta("c", base=0), 0.0)  # staleness 1
    core.offer("sim-00001", delta("d", base=1), 0.0)  # staleness 0
    core.offer("sim-00001", delta("e", base=0), 0.0)  # staleness 1
    core.offer("sim-00001", delta("e", base=0), 0.0)  # duplicate: not counted
    core.flush(0.0, 2001.0)
    assert core.metrics == {"updates": 3.0, "staleness_mean": 2 / 3, "staleness_max": 1.0}


def test_buffered_staleness_survives_a_restart(tmp_path: Path) -> None:
    core = make(tmp_path, buffer=3, staleness=Staleness("constant"))
    core.offer("sim-00001", delta("a"), 0.0)
    core.flush(0.0, 2000.0)
    core.offer("sim-00001", delta("b", base=0), 0.0)  # staleness 1, buffered
    state = decode_state(encode_state(core.snapshot()))
    again = Aggregator(core.settings, core.spec, state)
    again.offer("sim-00001", delta("c", base=1), 0.0)
    again.flush(0.0, 2001.0)
    assert again.metrics == {"updates": 2.0, "staleness_mean": 0.5, "staleness_max": 1.0}


def test_mqtt5_is_tried_first_and_kept_or_dropped_for_good() -> None:
    choice = ProtocolChoice((V5, V311))
    assert choice.current is V5
    assert choice.probing
    down = choice.after(connected=False).after(connected=False)
    assert down.current is V5  # a broker that is down: keep alternating
    old = choice.after(connected=False).after(connected=True)
    assert old.current is V311
    assert old.after(connected=False).current is V311
    new = choice.after(connected=True)
    assert not new.probing
    assert new.after(connected=False).current is V5


def _verdict(uid: str) -> Verdict:
    return Verdict(Ack("toy", "sim-00001", uid, True, 1, staleness=0, weight=1.0), 10, True)


def _snap(version: int) -> ModelSnapshot:
    return ModelSnapshot(version, 0.0, {}, {}, None)


def test_outbox_keeps_every_ack_and_only_the_newest_model() -> None:
    async def body() -> None:
        box = Outbox()
        box.put(BatchResult((_verdict("a"),), _snap(1)))
        box.put(BatchResult((_verdict("b"),), _snap(2)))  # version 1 is never encoded
        box.put(BatchResult((_verdict("c"),), None))
        got = await box.take()
        assert got is not None
        assert got.model is not None
        assert got.model.version == 2
        assert [v.ack.update_id for v in got.verdicts] == ["a", "b", "c"]
        box.close()
        assert await box.take() is None

    asyncio.run(body())
