"""Run a private mosquitto on a free loopback port (tests, benchmarks, local runs).

The process is ours: it gets a temporary config and data directory, is
started with :meth:`Mosquitto.start` (which returns only once the broker
accepts TCP connections), and is always stopped by :meth:`stop` or the
context manager. :meth:`kill` and :meth:`restart` let tests simulate a
crashed broker; the port and the persistence file survive a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from fedmq.errors import ConfigError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


@dataclass
class Mosquitto:
    """A mosquitto process bound to 127.0.0.1 with a generated config.

    ``extra_config`` lines are appended verbatim (ACLs, TLS listeners...).
    ``max_packet_size`` 0 means mosquitto's default (no limit).
    """

    port: int = 0
    max_packet_size: int = 0
    max_queued_messages: int = 100_000
    persistence: bool = True
    autosave_interval: int = 1
    extra_config: list[str] = field(default_factory=list)
    binary: str | None = None
    workdir: Path | None = None
    config_text: str | None = None  # a whole config instead of the generated one
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "mosquitto.log"

    def _config(self) -> str:
        assert self.workdir is not None
        if self.config_text is not None:
            return self.config_text
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 100",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"autosave_interval {self.autosave_interval}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if self.max_packet_size:
            lines.append(f"max_packet_size {self.max_packet_size}")
        return "\n".join([*lines, *self.extra_config]) + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = self.binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ConfigError("mosquitto not found: install it (Debian: apt-get install mosquitto)")
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fedmq-mosquitto-")
            self.workdir = Path(self._tmp.name)
        if not self.port:
            self.port = free_port()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self._config())
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_for_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log_path.read_text()[-2000:]}")
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate gracefully (mosquitto saves its persistence file on SIGTERM)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (no final save)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password and ACL files (and most settings)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)

    def restart(self, *, hard: bool = False) -> None:
        self.kill() if hard else self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
