"""Messages to bytes and back: a msgpack map with ``v`` (major version) and ``kind``.

``decode`` is safe on untrusted bytes: it checks the payload size before
parsing, bounds msgpack's allocations, refuses extension types, checks the
version and kind, and validates every field. It raises only
:class:`fedmq.errors.DecodeError` subclasses. Tensors are checked for
structure here; their numeric decoding (``Tensor.decode``) is separate so
that a service can run it off its event loop.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

import msgpack

from fedmq import PROTOCOL_MAJOR
from fedmq.errors import DecodeError, LimitExceeded, MalformedMessage, UnsupportedVersion
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.messages import BY_KIND, Message

M = TypeVar("M", bound=Message)
Payload = bytes | bytearray  # as received: the aggregator takes paho's buffer uncopied


def encode(message: Message) -> bytes:
    """Deterministic bytes of ``message`` (same message, same bytes)."""
    envelope: dict[str, Any] = {"v": PROTOCOL_MAJOR, "kind": message.KIND}
    envelope.update(message.to_wire())
    out: bytes = msgpack.packb(envelope, use_bin_type=True)
    return out


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedMessage(f"msgpack extension type {code} is not allowed")


def unpack(payload: Payload, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The envelope map of ``payload`` after size, version and shape checks."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise MalformedMessage("payload must be bytes")
    if len(payload) > limits.max_payload_bytes:
        raise LimitExceeded(
            f"payload of {len(payload)} bytes exceeds the limit of {limits.max_payload_bytes}"
        )
    if not payload:
        raise MalformedMessage("empty payload")
    try:
        obj = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            ext_hook=_no_ext,
            max_bin_len=limits.max_payload_bytes,
            max_str_len=limits.max_string_bytes,
            max_array_len=max(limits.max_tensors, limits.max_ndim, 1024),
            max_map_len=limits.max_tensors + 64,
        )
    except DecodeError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, RecursionError) as exc:
        raise MalformedMessage(f"not a msgpack message: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedMessage("message must be a msgpack map")
    v = obj.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise MalformedMessage("message has no integer protocol version 'v'")
    if v != PROTOCOL_MAJOR:
        raise UnsupportedVersion(f"protocol major version {v} is not supported (speak 1)")
    return obj


@overload
def decode(payload: Payload, expect: type[M], limits: Limits = ...) -> M: ...
@overload
def decode(payload: Payload, expect: None = None, limits: Limits = ...) -> Message: ...


def decode(
    payload: Payload, expect: type[M] | None = None, limits: Limits = DEFAULT_LIMITS
) -> Message:
    """Decode untrusted bytes into a message, optionally insisting on its type."""
    return from_envelope(unpack(payload, limits), expect, limits)


@overload
def from_envelope(obj: dict[str, Any], expect: type[M], limits: Limits = ...) -> M: ...
@overload
def from_envelope(obj: dict[str, Any], expect: None = None, limits: Limits = ...) -> Message: ...


def from_envelope(
    obj: dict[str, Any], expect: type[M] | None = None, limits: Limits = DEFAULT_LIMITS
) -> Message:
    """The message in an envelope :func:`unpack` returned (so a caller that looked
    inside first does not parse the payload twice)."""
    kind = obj.get("kind")
    cls = BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MalformedMessage(f"unknown message kind {kind!r}")
    if expect is not None and cls is not expect:
        raise MalformedMessage(f"expected a {expect.KIND} message, got {kind!r}")
    try:
        return cls.from_wire(obj, limits)
    except DecodeError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        # from_wire validates every field; this is the net for anything it missed.
        raise MalformedMessage(f"invalid {kind} message: {exc}") from exc
