"""glibc's mmap threshold: pinned where possible, never over the user's own setting."""

from __future__ import annotations

import sys

import pytest

from aggregator import heap


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tuning is Linux-only")
def test_pins_the_threshold_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(heap.ENV, raising=False)
    assert heap.pin_mmap_threshold() is True


def test_a_users_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(heap.ENV, "65536")
    assert heap.pin_mmap_threshold() is False
