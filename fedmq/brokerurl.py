"""Broker addresses given as URLs: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fedmq.errors import ConfigError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class BrokerURL:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in DEFAULT_PORTS:
            raise ConfigError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"broker URL {url!r}: bad port") from exc
        if not parts.hostname:
            raise ConfigError(f"broker URL {url!r}: no host")
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"broker URL {url!r}: no path or query allowed")
        return cls(
            parts.hostname,
            port,
            parts.scheme == "mqtts",
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        """The URL without the password (safe for logs)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
