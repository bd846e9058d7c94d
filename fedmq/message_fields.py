"""Field readers shared by the message modules: ids, tensor maps, sha256 digests."""

from __future__ import annotations

import dataclasses
from typing import Any

from fedmq.errors import (
    ConfigError,
    DecompressionBomb,
    LimitExceeded,
    MalformedMessage,
)
from fedmq.fields import (
    req_bytes,
    req_map,
    req_str,
)
from fedmq.limits import Limits
from fedmq.tensors import Tensor
from fedmq.topics import validate_id

MAX_NAME = 128  # characters in a tensor or parameter name


def ident(obj: dict[str, Any], key: str) -> str:
    value = req_str(obj, key, max_len=64)
    try:
        return validate_id(value, key)
    except ConfigError as exc:
        raise MalformedMessage(str(exc)) from exc


def tensor_map(obj: dict[str, Any], key: str, limits: Limits) -> dict[str, Tensor]:
    raw = req_map(obj, key)
    if len(raw) > limits.max_tensors:
        raise LimitExceeded(f"{len(raw)} tensors exceed the limit of {limits.max_tensors}")
    out: dict[str, Tensor] = {}
    elements = limits.max_elements
    inflated = limits.max_decompressed_bytes  # over the whole message, not per tensor
    for name, value in raw.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise MalformedMessage(f"bad tensor name {name!r}")
        tensor = Tensor.from_wire(value, limits)
        elements -= tensor.size
        if elements < 0:
            raise LimitExceeded(f"tensors exceed {limits.max_elements} elements in total")
        inflated -= tensor.raw_len
        if inflated < 0:
            raise DecompressionBomb(
                f"tensors would decode to over {limits.max_decompressed_bytes} bytes in total"
            )
        out[name] = tensor
    return out


def sha256(obj: dict[str, Any]) -> bytes:
    return req_bytes(obj, "sha256", length=32)


def wire_fields(message: Any, **converted: Any) -> dict[str, Any]:
    """Every field of the dataclass ``message`` by name, in field order (the wire order
    the test vectors pin), taking ``converted`` values for fields that need one."""
    return {f.name: converted[f.name] if f.name in converted else getattr(message, f.name)
            for f in dataclasses.fields(message)}
