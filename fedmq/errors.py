"""The one error hierarchy of fedmq.

::

    FedmqError
    ├── ConfigError (ValueError)          bad settings, ids, topics or encoding specs
    ├── EncodeError (ValueError)          values a lossy encoding cannot represent
    ├── DecodeError (ValueError)          untrusted bytes that cannot be decoded safely
    │   ├── MalformedMessage              not msgpack, wrong kind, missing/ill-typed field
    │   ├── UnsupportedVersion            unknown major protocol version
    │   ├── LimitExceeded                 payload, element count or tensor count over a limit
    │   │   └── DecompressionBomb         declared/actual inflated size over the limit
    │   ├── TensorError                   bad dtype, shape/size mismatch, truncated data
    │   └── ChunkError                    chunked model inconsistent or hash mismatch
    ├── UpdateRejected (ValueError)       a well-formed delta the aggregator refuses
    └── StateError                        persisted state unreadable or from other settings

Every exception carries context as attributes (``device``, ``task``, ``version``
where known) so logs and acks can say which input was at fault.
"""

from __future__ import annotations

from enum import StrEnum


class FedmqError(Exception):
    """Root of every error fedmq raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        device: str | None = None,
        task: str | None = None,
        version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.device = device
        self.task = task
        self.version = version

    def __str__(self) -> str:
        ctx = [
            f"{k}={v}"
            for k, v in (("task", self.task), ("device", self.device), ("version", self.version))
            if v is not None
        ]
        return f"{self.message} ({', '.join(ctx)})" if ctx else self.message


class ConfigError(FedmqError, ValueError):
    """Settings, identifiers, topics or encoding specs that cannot be used."""


class EncodeError(FedmqError, ValueError):
    """Values that the chosen encoding cannot represent (non-finite, out of range)."""


class DecodeError(FedmqError, ValueError):
    """Bytes from the wire that cannot be decoded safely. Nothing was changed."""


class MalformedMessage(DecodeError):
    """Not a msgpack envelope of the expected kind, or a field is missing or ill-typed."""


class UnsupportedVersion(DecodeError):
    """The envelope's major protocol version is not one this code speaks."""


class LimitExceeded(DecodeError):
    """Payload size, element count or tensor count is over the configured limit."""


class DecompressionBomb(LimitExceeded):
    """Compressed data would inflate past the declared or allowed size."""


class TensorError(DecodeError):
    """Tensor dtype, shape, size or encoding is inconsistent or truncated."""


class ChunkError(DecodeError):
    """A chunked model's pieces disagree or the reassembled hash does not match."""


class RejectReason(StrEnum):
    """Why the aggregator refused an update (the ``reason`` field of a rejected ack)."""

    MALFORMED = "malformed"
    WRONG_TASK = "wrong_task"
    WRONG_DEVICE = "wrong_device"
    UNKNOWN_VERSION = "unknown_version"
    TOO_STALE = "too_stale"
    SHAPE_MISMATCH = "shape_mismatch"
    DTYPE_MISMATCH = "dtype_mismatch"
    NON_FINITE = "non_finite"
    NORM_BOUND = "norm_bound"
    DUPLICATE = "duplicate"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"


class UpdateRejected(FedmqError, ValueError):
    """A delta the aggregator will not fold; ``reason`` is one of :class:`RejectReason`."""

    def __init__(
        self,
        reason: RejectReason,
        message: str,
        *,
        device: str | None = None,
        task: str | None = None,
        version: int | None = None,
    ) -> None:
        super().__init__(message, device=device, task=task, version=version)
        self.reason = reason


class StateError(FedmqError):
    """Persisted aggregator state is unreadable or was written under other settings."""
