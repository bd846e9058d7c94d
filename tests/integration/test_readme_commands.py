"""Every command README.md shows for connecting devices works, run as written.

Each command is taken from README.md itself; only the broker address
(``localhost:1883`` there) is pointed at the test's own mosquitto. The compose
commands need a Docker engine and are covered by tests/unit/test_compose.py; the
two set-up commands by CI and tests/integration/test_demo.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker.mosquitto import Mosquitto
from fedmq import codec
from fedmq.messages import Ack, ModelMeta

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def readme_line(prefix: str) -> str:
    lines = [ln.strip() for ln in README.splitlines() if ln.strip().startswith(prefix)]
    assert lines, f"README.md has no command starting with {prefix!r}"
    return lines[0]


def localize(command: str, broker: Mosquitto) -> str:
    return (
        command.replace("mqtt://localhost:1883", broker.url)
        .replace("-h localhost -p 1883", f"-h 127.0.0.1 -p {broker.port}")
    )


def fedmq_argv(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "fedmq"
    return [sys.executable, "-m", "fedmq", *argv[1:]]


def wait_for(client_topic: str, broker: Mosquitto, timeout: float = 60.0) -> bytes:
    """The first payload on ``client_topic`` (retained ones included)."""
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("127.0.0.1", broker.port)
    client.subscribe(client_topic, qos=1)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert got, f"nothing arrived on {client_topic}"
    return got[0]


@pytest.fixture
def aggregator(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Mosquitto]:
    """A real aggregator (K=1) that has published version 0 of ``digits``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--broker", mosquitto.url, "--task", "digits",
         "--buffer", "1", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("fedmq/v1/digits/model/meta", mosquitto)
        yield mosquitto
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mosquitto_sub_reads_the_retained_meta(aggregator: Mosquitto) -> None:
    command = localize(readme_line("mosquitto_sub "), aggregator)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                         check=True)
    assert "'kind': 'model_meta'" in out.stdout
    assert "'version': 0" in out.stdout


def test_paho_snippet_prints_the_model_version(aggregator: Mosquitto) -> None:
    block = re.search(r"```python\n(.+?)\n```", README, re.S)
    assert block is not None
    code = block.group(1).replace('"localhost", 1883', f'"127.0.0.1", {aggregator.port}')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert out.stdout.startswith("model v0: accuracy")


def test_watch_saves_a_loadable_estimator(aggregator: Mosquitto, tmp_path: Path) -> None:
    command = localize(readme_line("fedmq watch "), aggregator).replace(
        "--save models/", f"--save {tmp_path / 'models'}"
    )
    out = subprocess.run([*fedmq_argv(command), "--count", "1", "--timeout", "30"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("v0")
    assert (tmp_path / "models" / "model-v0.pkl").exists()


def test_device_command_trains_and_gets_accepted(aggregator: Mosquitto) -> None:
    command = localize(readme_line("fedmq device "), aggregator)
    device = shlex.split(command)[shlex.split(command).index("--device-id") + 1]
    proc = subprocess.Popen(fedmq_argv(command), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        ack = codec.decode(wait_for(f"fedmq/v1/digits/ack/{device}", aggregator), Ack)
        assert ack.accepted, ack
        meta = codec.decode(wait_for("fedmq/v1/digits/model/meta", aggregator), ModelMeta)
        assert meta.version >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_add_device_writes_a_mosquitto_password_entry(tmp_path: Path) -> None:
    command = readme_line("fedmq broker add-device ").replace(
        "broker/passwd", str(tmp_path / "passwd")
    )
    subprocess.run([*fedmq_argv(command), "--password", "s3cret"], check=True, timeout=30,
                   capture_output=True, env={**os.environ, "PYTHONWARNINGS": "error"})
    entry = (tmp_path / "passwd").read_text().strip()
    assert entry.startswith("pi-kitchen:$7$")
