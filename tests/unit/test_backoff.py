"""Reconnect backoff: capped exponential growth, partial and full jitter."""

from __future__ import annotations

import pytest

from fedmq.backoff import backoff_delay
from fedmq.errors import ConfigError


def test_backoff_grows_caps_and_jitters() -> None:
    assert [backoff_delay(a, jitter=0) for a in range(4)] == [0.2, 0.4, 0.8, 1.6]
    assert backoff_delay(100, jitter=0) == 30.0
    assert backoff_delay(3, u=0.0) == 1.6
    assert backoff_delay(3, u=1.0, jitter=0.5) == 0.8


def test_full_jitter_spreads_over_the_whole_window() -> None:
    assert backoff_delay(0, base=1.0, jitter=1.0, u=0.5) == 0.5
    assert backoff_delay(100, base=1.0, cap=30.0, jitter=1.0, u=0.0) == 30.0
    assert backoff_delay(5, base=0.5, jitter=1.0, u=1.0) == 0.0


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="backoff"):
        backoff_delay(-1)
    with pytest.raises(ValueError, match="backoff"):
        backoff_delay(0, jitter=2.0)
