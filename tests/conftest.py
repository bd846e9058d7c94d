"""Shared fixtures: a real mosquitto per test on a free loopback port, fresh registries."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from broker.mosquitto import Mosquitto

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _require_mosquitto() -> None:
    if shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"):
        return
    message = "mosquitto is not installed (apt-get install mosquitto)"
    if IN_CI:
        pytest.fail(message)  # in CI a missing broker is a failure, never a skip
    pytest.skip(message)


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., Mosquitto]]:
    """Start brokers with custom settings; every one is stopped after the test."""
    _require_mosquitto()
    started: list[Mosquitto] = []

    def make(**kwargs: object) -> Mosquitto:
        broker = Mosquitto(**kwargs)  # type: ignore[arg-type]
        started.append(broker)
        return broker.start()

    yield make
    for broker in started:
        broker.close()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A fresh mosquitto on 127.0.0.1 with no packet limit."""
    return mosquitto_factory()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()
