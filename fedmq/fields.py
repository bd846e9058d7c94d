"""Typed reads of fields from an untrusted msgpack map; every failure is MalformedMessage."""

from __future__ import annotations

import math
from typing import Any

from fedmq.errors import MalformedMessage

_MISSING = object()


def _raw(obj: dict[str, Any], key: str, optional: bool) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and optional):
        if optional:
            return None
        raise MalformedMessage(f"missing field {key!r}")
    return value


def req_int(obj: dict[str, Any], key: str, *, minimum: int = 0) -> int:
    value = _raw(obj, key, False)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MalformedMessage(f"field {key!r} must be an int >= {minimum}, got {value!r}")
    return value


def opt_int(obj: dict[str, Any], key: str, *, minimum: int = 0) -> int | None:
    if obj.get(key) is None:
        return None
    return req_int(obj, key, minimum=minimum)


def req_float(obj: dict[str, Any], key: str, *, finite: bool = True) -> float:
    value = _raw(obj, key, False)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedMessage(f"field {key!r} must be a number, got {type(value).__name__}")
    if finite and not math.isfinite(value):
        raise MalformedMessage(f"field {key!r} must be finite")
    return float(value)


def opt_float(obj: dict[str, Any], key: str, *, finite: bool = True) -> float | None:
    if obj.get(key) is None:
        return None
    return req_float(obj, key, finite=finite)


def req_str(obj: dict[str, Any], key: str, *, max_len: int = 256) -> str:
    value = _raw(obj, key, False)
    if not isinstance(value, str) or len(value) > max_len:
        raise MalformedMessage(f"field {key!r} must be a string of at most {max_len} chars")
    return value


def opt_str(obj: dict[str, Any], key: str, *, max_len: int = 256) -> str | None:
    if obj.get(key) is None:
        return None
    return req_str(obj, key, max_len=max_len)


def req_bool(obj: dict[str, Any], key: str) -> bool:
    value = _raw(obj, key, False)
    if not isinstance(value, bool):
        raise MalformedMessage(f"field {key!r} must be a bool, got {value!r}")
    return value


def opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    if obj.get(key) is None:
        return None
    return req_bool(obj, key)


def req_bytes(obj: dict[str, Any], key: str, *, length: int | None = None) -> bytes:
    value = _raw(obj, key, False)
    if not isinstance(value, bytes) or (length is not None and len(value) != length):
        want = f" of {length} bytes" if length is not None else ""
        raise MalformedMessage(f"field {key!r} must be binary{want}")
    return value


def req_map(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = _raw(obj, key, False)
    if not isinstance(value, dict):
        raise MalformedMessage(f"field {key!r} must be a map")
    return value


def metrics_map(obj: dict[str, Any], key: str) -> dict[str, float]:
    """An optional map of metric name to finite number (non-numbers are ignored)."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedMessage(f"field {key!r} must be a map")
    return {
        str(k): float(v)
        for k, v in value.items()
        if isinstance(k, str)
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    }
