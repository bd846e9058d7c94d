"""The demo end to end: README's command as written, the timeout path, the port fallback."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from demo.embedded_broker import pick_port
from tests.unit.test_readme import readme_command

pytestmark = pytest.mark.integration


def demo_argv(extra: list[str] | None = None) -> list[str]:
    run = readme_command("demo-command").partition(" && ")[2]
    argv = shlex.split(run)
    assert argv[:2] == ["fedmq", "demo"]
    return [sys.executable, "-m", "fedmq", *argv[1:], *(extra or [])]


@pytest.mark.slow
def test_readme_demo_command_reaches_its_target(tmp_path: Path) -> None:
    out = subprocess.run(demo_argv(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "embedded MQTT broker" in out.stdout
    assert "reached 0.85: yes" in out.stdout
    assert (tmp_path / "demo-out" / "accuracy.png").stat().st_size > 10_000


def test_demo_times_out_with_a_clear_message(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "fedmq", "demo", "--devices", "5", "--target-accuracy",
            "0.999", "--timeout", "4", "--out", str(tmp_path / "out")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1
    assert "timeout after 4 s before reaching accuracy 0.999" in out.stderr
    assert "reached 0.999: NO" in out.stdout


def test_embedded_broker_port_falls_back_when_the_usual_one_is_busy() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        port = pick_port("127.0.0.1", taken)
    assert port != taken
    assert port > 0


def test_sync_demo_runs_fedavg_rounds(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "fedmq", "demo", "--mode", "sync", "--ideal", "--devices",
            "10", "--target-accuracy", "0.6", "--timeout", "40", "--out", str(tmp_path)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "reached 0.6: yes" in out.stdout
