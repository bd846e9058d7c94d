"""Limits applied when decoding untrusted bytes."""

from __future__ import annotations

from dataclasses import dataclass

from fedmq.errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a decoder accepts before it allocates anything large.

    Defaults admit models of up to 16M float32 parameters (64 MiB) and
    refuse anything that would need more memory than that to decode.
    """

    max_payload_bytes: int = 80 * MiB
    max_tensors: int = 1024
    max_elements: int = 16 * MiB  # total elements over all tensors of one message
    max_ndim: int = 8
    max_decompressed_bytes: int = 80 * MiB
    max_string_bytes: int = 4096
    max_chunks: int = 65536

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"limit {name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = Limits()
