"""The production broker config (broker/mosquitto.conf + broker/acl) on a real mosquitto.

No timed asserts: a denied publish is detected by its MQTT 5 reason code (135) and by
a *sentinel*: the same client then publishes something allowed, and since one
client's QoS 1 messages reach a subscriber in order, the spy seeing the sentinel
without the denied message proves the denied one was dropped.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker import conf, passwd
from broker.mosquitto import Mosquitto, free_port
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0  # generous bound for events that normally take milliseconds
NOT_AUTHORIZED = 135
BASE = "fedmq/v1/digits"
PASSWORDS = {
    "aggregator": "agg-pw",
    "simulator": "sim-pw",
    "dev1": "dev1-pw",
    "dev2": "dev2-pw",
    "spy": "spy-pw",
}


@dataclass
class Client:
    """A blocking MQTT 5 test client: publish and wait for the broker's verdict."""

    port: int
    username: str | None
    password: str | None
    client: mqtt.Client = field(init=False)
    inbox: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    _acks: dict[int, threading.Event] = field(default_factory=dict)
    _codes: dict[int, int] = field(default_factory=dict)
    _connected: queue.Queue[int] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{self.username}-{free_port()}",
            protocol=mqtt.MQTTv5,
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, msg: self.inbox.put((msg.topic, msg.payload))

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self._connected.put(rc.value)

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties | None
    ) -> None:
        self._codes[mid] = rc.value
        self._acks.setdefault(mid, threading.Event()).set()

    def connect(self) -> int:
        """CONNACK reason code (0 = accepted)."""
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        code = self._connected.get(timeout=WAIT)
        if code != 0:
            self.client.loop_stop()
        return code

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        assert done.wait(WAIT)

    def publish(self, topic: str, payload: bytes = b"x", retain: bool = False) -> int:
        """PUBACK reason code: 0 accepted, 135 refused by the ACL."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        event = self._acks.setdefault(info.mid, threading.Event())
        assert event.wait(WAIT), f"no PUBACK for {topic}"
        return self._codes[info.mid]

    def received_until(self, sentinel: str) -> list[str]:
        """Topics received up to and including ``sentinel``."""
        topics: list[str] = []
        while True:
            topic, _ = self.inbox.get(timeout=WAIT)
            topics.append(topic)
            if topic == sentinel:
                return topics

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path) -> Mosquitto:
    """mosquitto from the production config; a test-only `spy` may read everything."""
    passwd_file = tmp_path / "passwd"
    for user, password in PASSWORDS.items():
        passwd.set_password(passwd_file, user, password)
    acl_file = tmp_path / "acl"
    acl_file.write_text(conf.ACL_PATH.read_text() + "\nuser spy\ntopic read #\n")
    port = free_port()
    text = conf.localize(
        conf.CONF_PATH.read_text(),
        port=port,
        data_dir=tmp_path,
        passwd_file=passwd_file,
        acl_file=acl_file,
        run_as="root" if _is_root() else None,
    )
    return mosquitto_factory(port=port, config_text=text)


def _is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture
def connect(broker: Mosquitto) -> Iterator[Callable[[str], Client]]:
    clients: list[Client] = []

    def make(user: str) -> Client:
        client = Client(broker.port, user, PASSWORDS[user])
        clients.append(client)
        assert client.connect() == 0, f"{user} refused"
        return client

    yield make
    for client in clients:
        client.close()


def test_production_config_keeps_its_hardening() -> None:
    active = conf.settings(conf.CONF_PATH.read_text())
    assert active["allow_anonymous"] == ["false"]
    assert 10 <= int(active["autosave_interval"][0]) <= 60
    assert int(active["max_queued_messages"][0]) >= 100_000
    assert int(active["max_packet_size"][0]) > 0
    assert active["persistence"] == ["true"]


def test_wrong_or_missing_credentials_are_refused(broker: Mosquitto) -> None:
    for username, password in (("dev1", "wrong"), ("nobody", "x"), (None, None)):
        client = Client(broker.port, username, password)
        assert client.connect() in (134, NOT_AUTHORIZED)  # bad credentials / not authorised


def test_device_writes_only_its_own_delta_and_status(connect: Callable[[str], Client]) -> None:
    spy = connect("spy")
    spy.subscribe(f"{BASE}/#")
    dev1 = connect("dev1")
    forbidden = [
        f"{BASE}/model",
        f"{BASE}/model/meta",
        f"{BASE}/model/chunk/0",
        f"{BASE}/ack/dev1",
        f"{BASE}/aggregator/status",
        f"{BASE}/delta/dev2",
        f"{BASE}/status/dev2",
    ]
    for topic in forbidden:
        assert dev1.publish(topic) == NOT_AUTHORIZED, topic
    assert dev1.publish(f"{BASE}/status/dev1", retain=True) == 0
    assert dev1.publish(f"{BASE}/delta/dev1") == 0
    assert spy.received_until(f"{BASE}/delta/dev1") == [f"{BASE}/status/dev1", f"{BASE}/delta/dev1"]


def test_device_reads_models_and_only_its_own_acks(connect: Callable[[str], Client]) -> None:
    dev1 = connect("dev1")
    dev1.subscribe(f"{BASE}/#")
    aggregator = connect("aggregator")
    dev2 = connect("dev2")
    assert dev2.publish(f"{BASE}/delta/dev2") == 0  # another device's delta: not for dev1
    for topic in (
        f"{BASE}/model/chunk/0",
        f"{BASE}/model",
        f"{BASE}/model/meta",
        f"{BASE}/ack/dev2",
        f"{BASE}/ack/dev1",
        f"{BASE}/aggregator/status",
    ):
        assert aggregator.publish(topic) == 0, topic
    assert dev1.received_until(f"{BASE}/aggregator/status") == [
        f"{BASE}/model/chunk/0",
        f"{BASE}/model",
        f"{BASE}/model/meta",
        f"{BASE}/ack/dev1",
        f"{BASE}/aggregator/status",
    ]


def test_aggregator_reads_deltas_through_a_shared_subscription(
    connect: Callable[[str], Client],
) -> None:
    aggregator = connect("aggregator")
    aggregator.subscribe(f"$share/fedmq/{BASE}/delta/+", f"{BASE}/status/+")
    dev1 = connect("dev1")
    assert dev1.publish(f"{BASE}/status/dev1") == 0
    assert dev1.publish(f"{BASE}/delta/dev1") == 0
    assert aggregator.received_until(f"{BASE}/delta/dev1") == [
        f"{BASE}/status/dev1",
        f"{BASE}/delta/dev1",
    ]
    # the aggregator speaks for no device
    assert aggregator.publish(f"{BASE}/status/dev1") == NOT_AUTHORIZED
    assert aggregator.publish(f"{BASE}/delta/dev1") == NOT_AUTHORIZED


def test_simulator_acts_for_every_simulated_device_but_never_as_aggregator(
    connect: Callable[[str], Client],
) -> None:
    spy = connect("spy")
    spy.subscribe(f"{BASE}/#")
    simulator = connect("simulator")
    simulator.subscribe(f"{BASE}/ack/+", f"{BASE}/model")
    for topic in (f"{BASE}/model", f"{BASE}/model/meta", f"{BASE}/ack/sim-1"):
        assert simulator.publish(topic) == NOT_AUTHORIZED, topic
    assert simulator.publish(f"{BASE}/delta/sim-1") == 0
    assert simulator.publish(f"{BASE}/status/sim-2") == 0
    assert spy.received_until(f"{BASE}/status/sim-2") == [
        f"{BASE}/delta/sim-1",
        f"{BASE}/status/sim-2",
    ]
    aggregator = connect("aggregator")
    assert aggregator.publish(f"{BASE}/ack/sim-7") == 0
    assert simulator.received_until(f"{BASE}/ack/sim-7") == [f"{BASE}/ack/sim-7"]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _require(binary: str) -> str:
    return require_binary(binary, "mosquitto mosquitto-clients")


def test_compose_credential_flow_on_a_real_broker(
    mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    """broker-init's script, then the mosquitto healthcheck and the services' logins."""
    services = _compose()["services"]
    auth, credentials = tmp_path / "auth", tmp_path / "credentials"
    script = services["broker-init"]["command"][0]
    script = script.replace("/auth/", f"{auth}/").replace("/credentials/", f"{credentials}/")
    if not _is_root():
        script = re.sub(r"^chown .*$", "", script, flags=re.M)  # only root can give files away
    fedmq_bin = tmp_path / "bin" / "fedmq"
    fedmq_bin.parent.mkdir()
    fedmq_bin.write_text(f'#!/bin/sh\nexec {sys.executable} -m fedmq "$@"\n')
    fedmq_bin.chmod(0o755)
    env = {**os.environ, "PATH": f"{fedmq_bin.parent}:{os.environ['PATH']}"}
    for _ in range(2):  # a second `docker compose up` re-runs it and must keep the passwords
        subprocess.run(["sh", "-ec", script], env=env, check=True)
    assert sorted(passwd.read_passwd(auth / "passwd")) == ["aggregator", "monitor", "simulator"]

    port = free_port()
    text = conf.localize(
        conf.CONF_PATH.read_text(),
        port=port,
        data_dir=tmp_path,
        passwd_file=auth / "passwd",
        acl_file=conf.ACL_PATH,
        run_as="root" if _is_root() else None,
    )
    broker = mosquitto_factory(port=port, config_text=text)

    health = services["mosquitto"]["healthcheck"]["test"][1].replace("$$", "$")
    health = health.replace("/mosquitto/auth/", f"{auth}/").replace("-p 1883", f"-p {port}")
    _require("mosquitto_sub")
    subprocess.run(["sh", "-c", health], check=True, timeout=30)

    for service in ("aggregator", "devices"):
        environment = services[service]["environment"]
        user = environment["FEDMQ_BROKER"].split("://")[1].split("@")[0]
        secret = environment["FEDMQ_BROKER_PASSWORD_FILE"].replace(
            "/run/fedmq/credentials/", f"{credentials}/"
        )
        client = Client(broker.port, user, Path(secret).read_text().strip())
        assert client.connect() == 0, service
        client.close()


def test_devices_added_later_log_in_after_a_reload(broker: Mosquitto, tmp_path: Path) -> None:
    assert Client(broker.port, "dev-new", "pw").connect() == NOT_AUTHORIZED
    passwd.set_password(tmp_path / "passwd", "dev-new", "pw")
    broker.reload()
    for _ in range(50):  # the reload happens on the broker's next loop; poll, don't sleep-assert
        client = Client(broker.port, "dev-new", "pw")
        if client.connect() == 0:
            client.close()
            return
    pytest.fail("mosquitto did not pick up the new password file after SIGHUP")
