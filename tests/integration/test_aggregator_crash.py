"""SIGKILL and SIGTERM of a real aggregator process: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from broker.mosquitto import Mosquitto
from fedmq import codec
from fedmq.messages import AggregatorStatus
from fedmq.tasks import get_task
from tests.integration.test_aggregator_service import (
    TASK,
    TOPICS,
    arrays,
    delta_payload,
    retained_model,
    watcher,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
K, N = 4, 48


def spawn(broker: Mosquitto, state_dir: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "aggregator", "--broker", broker.url, "--task", TASK,
           "--buffer", str(K), "--staleness", "constant", "--max-staleness", "1000",
           "--buffer-timeout", "600", "--state-dir", str(state_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEDMQ_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def test_sigkill_loses_nothing_and_counts_nothing_twice(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    procs: list[subprocess.Popen[bytes]] = []

    async def body() -> None:
        async with watcher(mosquitto) as w:
            procs.append(spawn(mosquitto, tmp_path))
            await w.until(lambda w: w.metas != [])  # up, version 0 published
            for i in range(N):
                dev = f"sim-{i % 6:05d}"
                await w.publish(dev, delta_payload(dev, f"u{i}", 0, 5, 100 + i))
            for kill_at in (2, 6):  # SIGKILL twice while deltas are being folded
                await w.until(lambda w, v=kill_at: w.metas[-1].version >= v)
                procs[-1].send_signal(signal.SIGKILL)
                procs[-1].wait()
                procs.append(spawn(mosquitto, tmp_path))
            await w.until(lambda w: w.metas[-1].version == N // K)
            # Device acks in flight at a kill are lost; devices retry those updates,
            # as the real agent does, and are told "duplicate".
            unacked = set(range(N)) - {int(a.update_id[1:]) for a in w.acks}
            for i in sorted(unacked):
                dev = f"sim-{i % 6:05d}"
                await w.publish(dev, delta_payload(dev, f"u{i}", 0, 5, 100 + i))
            await w.until(lambda w: {a.update_id for a in w.acks} == {f"u{i}" for i in range(N)})
            model = await retained_model(mosquitto)
            procs[-1].send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(procs[-1].wait, 30) == 0
        accepted = [a.update_id for a in w.acks if a.accepted]
        assert len(accepted) == len(set(accepted))  # never accepted twice
        assert all(a.accepted or a.reason == "duplicate" for a in w.acks)
        versions = [m.version for m in w.metas]
        assert versions == sorted(versions)  # never an older version after a newer one
        # K equal-n deltas per version: each version adds their mean, so however the
        # deltas were grouped, folding each exactly once gives w0 + sum(D) / K.
        w0 = get_task(TASK).initial_params()
        for k, v in w0.items():
            want = v + sum(arrays(100 + i)[k].astype(np.float64) for i in range(N)) / K
            np.testing.assert_allclose(model.params[k].decode(), want, rtol=1e-5, atol=1e-6)
        assert model.version == N // K
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
            await c.subscribe(TOPICS.aggregator_status, qos=1)
            async for m in c.messages:
                assert isinstance(m.payload, bytes)
                status = codec.decode(m.payload, AggregatorStatus)
                assert not status.online
                assert status.version == N // K
                break

    try:
        asyncio.run(asyncio.wait_for(body(), 120))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
