"""An MQTT 3.1.1 broker inside the demo's own event loop (amqtt), for zero-install runs.

amqtt keeps retained messages in memory and has no persistence or shared
subscriptions; it is several times slower than mosquitto. That is
fine for a laptop demo of a few dozen devices, and the demo accepts
``--broker`` to use a real broker instead.
"""

from __future__ import annotations

import logging
import socket
from contextlib import suppress
from types import TracebackType
from typing import Any

from broker.mosquitto import free_port
from fedmq.errors import ConfigError

log = logging.getLogger(__name__)
USUAL_PORT = 1883


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(host: str, preferred: int = USUAL_PORT) -> int:
    """``preferred`` when nobody listens there, else a free port chosen by the OS."""
    if preferred and port_is_free(host, preferred):
        return preferred
    return free_port(host)


class _SnapshotIterDict(dict[str, Any]):
    """A dict whose iteration walks a snapshot of its keys.

    amqtt 0.12 iterates ``Broker._subscriptions`` while awaiting inside the loop
    (``_handle_client_session``); another client subscribing meanwhile raises
    "dictionary changed size during iteration" and drops that connection.
    """

    def __iter__(self) -> Any:
        return iter(list(self.keys()))


class EmbeddedBroker:
    """``async with EmbeddedBroker() as b: b.url`` -- a broker on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = USUAL_PORT) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # the demo extra is missing
            raise ConfigError(
                "the embedded broker needs amqtt: pip install 'fedmq[demo]' (or pass --broker)"
            ) from exc
        self.port = pick_port(self.host, self.requested_port)
        if self.requested_port and self.port != self.requested_port:
            log.warning("port %d is busy; embedded broker uses port %d", self.requested_port,
                        self.port)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }
        # amqtt logs every connection at INFO and warns about undelivered messages
        # whenever it stops with clients attached; the demo has its own progress view.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._broker = Broker(config)
        self._broker._subscriptions = _SnapshotIterDict()  # see _SnapshotIterDict
        await self._broker.start()
        return self

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            with suppress(RuntimeError):  # amqtt raises if it was never fully started
                await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
