"""Shared fixtures: a real mosquitto per test on a free loopback port, fresh registries."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from broker.mosquitto import Mosquitto

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, package: str, *, also: str | None = None) -> str:
    """The path of ``name`` (or ``also``); missing fails under CI=true and skips elsewhere."""
    path = shutil.which(name) or (also if also and os.path.exists(also) else None)
    if path is not None:
        return path
    message = f"{name} is not installed (apt-get install {package})"
    if IN_CI:
        pytest.fail(message)  # in CI a missing service is a failure, never a skip
    pytest.skip(message)


def _require_mosquitto() -> None:
    require_binary("mosquitto", "mosquitto", also="/usr/sbin/mosquitto")


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
