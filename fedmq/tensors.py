"""Tensor encodings on the wire: ``f32``, ``f16``, ``q8`` and ``topk``, optionally zlib'd.

A :class:`Tensor` is the wire form of one array (bytes plus the few numbers
needed to read them); :meth:`Tensor.encode` makes one from a numpy array and
:meth:`Tensor.decode` turns it back into float32. Byte layouts are in
PROTOCOL.md ("Tensors"). All multi-byte numbers are little-endian.

Worst-case absolute error per element, for an input ``x`` (see PROTOCOL.md):

- ``f32``: 0 (exact).
- ``f16``: ``|x| * 2**-11`` for ``|x| >= 2**-14``, else ``2**-25``; values
  beyond 65504 are refused rather than turned into infinity.
- ``q8`` (block B): ``max|x_block| / 254`` -- half a quantisation step (plus
  float32 rounding: a relative ``2**-20`` and, for blocks whose maximum is
  below ``2**-119`` where the scale underflows, an absolute ``2**-140``).
- ``topk`` (fraction p): dropped elements lose their value, each at most the
  k-th largest magnitude; kept ones have the error of their value encoding
  (``f16`` as above, ``q8`` with one block over the kept values).

Compression (``+zlib``) is lossless and applies to the ``data`` field only.
zlib was chosen over zstd: PROTOCOL.md ("Compression") quotes the measurement
(``python -m bench.codec``); the sizes are close, and zlib is in every
language's standard library and on microcontrollers (miniz), which matters more
for devices than zstd's speed. Encodings are named by
:class:`fedmq.encoding.EncodingSpec`; error feedback is in :mod:`fedmq.feedback`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fedmq.encoding import ENCODINGS, TOPK_VALUES, EncodingSpec
from fedmq.errors import DecompressionBomb, EncodeError, LimitExceeded, TensorError
from fedmq.limits import DEFAULT_LIMITS, Limits

F32Array = npt.NDArray[np.float32]

F16_MAX = 65504.0
F32_MAX = float(np.finfo(np.float32).max)
# largest q8 scale: 127 * scale must stay finite in float32 (the encoder's is max|x| / 127)
Q8_MAX_SCALE = float(np.nextafter(np.float32(F32_MAX / 127), np.float32(0)))
_ITEM = {"f32": 4, "f16": 2}
_ZLIB_LEVEL = 6


@dataclass(frozen=True, slots=True)
class Tensor:
    """One array in wire form. Construct with :meth:`encode` or :meth:`from_wire`."""

    enc: str
    shape: tuple[int, ...]
    data: bytes
    compressed: bool = False
    block: int = 0  # q8: elements per scale, 0 = whole tensor
    scales: bytes = b""  # q8: float32 per block
    k: int = 0  # topk: number of kept elements
    values: str = ""  # topk: "f16" | "q8"
    scale: float = 0.0  # topk with q8 values: one scale
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def raw_len(self) -> int:
        """Length of ``data`` once decompressed; fixed by shape and encoding."""
        n = self.size
        if self.enc in _ITEM:
            return n * _ITEM[self.enc]
        if self.enc == "q8":
            return n
        return self.k * (4 + (2 if self.values == "f16" else 1))

    @property
    def nbytes(self) -> int:
        """Bytes this tensor occupies on the wire (data and scales)."""
        return len(self.data) + len(self.scales)

    # -- encoding -----------------------------------------------------------------

    @classmethod
    def encode(cls, array: npt.ArrayLike, spec: EncodingSpec | str = "f32") -> Tensor:
        """Encode ``array`` (any real dtype, cast to float32) as ``spec`` says."""
        if isinstance(spec, str):
            spec = EncodingSpec.parse(spec)
        # order="C", not ascontiguousarray: that one turns a 0-d array into shape (1,)
        x = np.asarray(array, dtype=np.float32, order="C")
        shape = tuple(int(d) for d in x.shape)
        flat = x.reshape(-1)
        if spec.lossy and not np.isfinite(flat).all():
            raise EncodeError(f"{spec.kind} cannot encode non-finite values")
        fields: dict[str, Any] = {}
        if spec.kind == "f32":
            raw = flat.astype("<f4").tobytes()
        elif spec.kind == "f16":
            raw = _to_f16(flat)
        elif spec.kind == "q8":
            q, scales, block = _quantize(flat, spec.block)
            raw = q.tobytes()
            fields = {"block": block, "scales": scales.astype("<f4").tobytes()}
        else:
            raw, fields = _topk(flat, spec)
        if spec.compress:
            raw = zlib.compress(raw, _ZLIB_LEVEL)
        return cls(spec.kind, shape, raw, compressed=spec.compress, **fields)

    # -- wire form ----------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enc": self.enc, "shape": list(self.shape)}
        if self.enc == "q8":
            out["block"] = self.block
            out["scales"] = self.scales
        elif self.enc == "topk":
            out["k"] = self.k
            out["values"] = self.values
            if self.values == "q8":
                out["scale"] = self.scale
        if self.compressed:
            out["z"] = "zlib"
        out["data"] = self.data
        return out

    @classmethod
    def from_wire(cls, obj: Any, limits: Limits = DEFAULT_LIMITS) -> Tensor:
        """Check the structure of an untrusted tensor map; no inflation happens here."""
        if not isinstance(obj, dict):
            raise TensorError("tensor must be a map")
        enc = obj.get("enc")
        if enc not in ENCODINGS:
            raise TensorError(f"unknown tensor encoding {enc!r}")
        shape = _shape(obj.get("shape"), limits)
        data = obj.get("data")
        if not isinstance(data, bytes):
            raise TensorError("tensor data must be bytes")
        z = obj.get("z")
        if z not in (None, "zlib"):
            raise TensorError(f"unknown tensor compression {z!r}")
        n = math.prod(shape)
        kw = _q8_fields(obj, n) if enc == "q8" else _topk_fields(obj, n) if enc == "topk" else {}
        tensor = cls(enc, shape, data, compressed=z == "zlib", **kw)
        if tensor.raw_len > limits.max_decompressed_bytes:
            raise DecompressionBomb(f"tensor would decode to {tensor.raw_len} bytes")
        if not tensor.compressed and len(data) != tensor.raw_len:
            raise TensorError(f"tensor data is {len(data)} bytes, shape needs {tensor.raw_len}")
        if tensor.compressed and len(data) > zlib_bound(tensor.raw_len):
            raise TensorError("compressed tensor data is longer than its raw form can be")
        return tensor

    # -- decoding -----------------------------------------------------------------

    def raw(self) -> bytes:
        """The uncompressed ``data``, inflating at most ``raw_len`` bytes."""
        if not self.compressed:
            return self.data
        cached = self._cache.get("raw")
        if cached is None:
            cached = _inflate(self.data, self.raw_len)
            self._cache["raw"] = cached
        return bytes(cached)

    def decode(self) -> F32Array:
        """The tensor as a float32 array of ``shape``."""
        raw = self.raw()
        n = self.size
        if self.enc == "f32":
            flat = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif self.enc == "f16":
            flat = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif self.enc == "q8":
            q = _int8(raw)
            scales = np.frombuffer(self.scales, dtype="<f4").astype(np.float32)
            if 0 < self.block < n:
                flat = q * np.repeat(scales, self.block)[:n]
            else:  # one block: block 0, or a block at least as long as the tensor
                flat = q * scales[0] if n else q
        else:
            flat = self._decode_topk(raw, n)
        return flat.reshape(self.shape)

    def _decode_topk(self, raw: bytes, n: int) -> F32Array:
        k = self.k
        idx = np.frombuffer(raw, dtype="<u4", count=k).astype(np.int64)
        if k and (idx[-1] >= n or (k > 1 and not bool(np.all(np.diff(idx) > 0)))):
            raise TensorError("topk indices must be strictly ascending and < size")
        if self.values == "f16":
            vals = np.frombuffer(raw, dtype="<f2", offset=4 * k).astype(np.float32)
        else:
            vals = _int8(raw, 4 * k) * np.float32(self.scale)
        flat = np.zeros(n, dtype=np.float32)
        flat[idx] = vals
        return flat


# -- helpers ---------------------------------------------------------------------


def zlib_bound(n: int) -> int:
    """Upper bound of zlib's output for ``n`` input bytes (stored blocks + header)."""
    return n + 5 * (n // 16383 + 1) + 64


def _inflate(data: bytes, expected: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, expected + 1)
    except zlib.error as exc:
        raise TensorError(f"corrupt zlib data: {exc}") from exc
    if len(out) > expected or d.unconsumed_tail:
        raise DecompressionBomb(f"compressed data inflates past the declared {expected} bytes")
    if len(out) != expected or not d.eof:
        raise TensorError(f"compressed data inflates to {len(out)} bytes, need {expected}")
    if d.unused_data:
        raise TensorError("trailing bytes after the zlib stream")
    return out


def _int8(raw: bytes, offset: int = 0) -> F32Array:
    """Quantised values as float32; -128 is not a legal code (the range is symmetric)."""
    q = np.frombuffer(raw, dtype=np.int8, offset=offset)
    if q.size and int(q.min()) < -127:
        raise TensorError("q8 value -128 is not allowed (codes are -127..127)")
    return q.astype(np.float32)


def _q8_fields(obj: dict[str, Any], n: int) -> dict[str, Any]:
    block = _uint(obj.get("block"), "block")
    scales = obj.get("scales")
    if not isinstance(scales, bytes):
        raise TensorError("q8 scales must be bytes")
    if len(scales) != 4 * _num_blocks(n, block):
        raise TensorError("q8 scales length does not match shape and block")
    s = np.frombuffer(scales, dtype="<f4")
    if not bool(np.all((s >= 0) & (s <= Q8_MAX_SCALE))):  # also refuses NaN
        raise TensorError(f"q8 scales must be in [0, {Q8_MAX_SCALE}]")
    return {"block": block, "scales": scales}


def _topk_fields(obj: dict[str, Any], n: int) -> dict[str, Any]:
    k = _uint(obj.get("k"), "k")
    if k > n:
        raise TensorError(f"topk k={k} exceeds tensor size {n}")
    values = obj.get("values")
    if values not in TOPK_VALUES:
        raise TensorError(f"unknown topk value encoding {values!r}")
    out: dict[str, Any] = {"k": k, "values": values}
    if values == "q8":
        scale = obj.get("scale")
        if (
            not isinstance(scale, float | int)
            or isinstance(scale, bool)
            or not 0.0 <= scale <= Q8_MAX_SCALE  # also refuses NaN; applied as a float32
        ):
            raise TensorError(f"topk q8 scale must be a number in [0, {Q8_MAX_SCALE}]")
        out["scale"] = float(scale)
    return out


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TensorError(f"{what} must be a non-negative int, got {value!r}")
    return value


def _shape(value: Any, limits: Limits) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > limits.max_ndim:
        raise TensorError(f"shape must be a list of at most {limits.max_ndim} dims")
    shape = tuple(_uint(d, "dimension") for d in value)
    # each dimension is bounded too: a zero elsewhere would hide a huge one from the product
    if math.prod(shape) > limits.max_elements or any(d > limits.max_elements for d in shape):
        raise LimitExceeded(f"tensor of shape {shape} exceeds {limits.max_elements} elements")
    return shape


def _num_blocks(n: int, block: int) -> int:
    return 1 if block == 0 or n == 0 else -(-n // block)


def _to_f16(flat: F32Array) -> bytes:
    if flat.size and float(np.abs(flat).max()) > F16_MAX:
        raise EncodeError(f"value beyond float16 range ±{F16_MAX}")
    return flat.astype("<f2").tobytes()


def _quantize(flat: F32Array, block: int) -> tuple[npt.NDArray[np.int8], F32Array, int]:
    """Symmetric int8 quantisation with one float32 scale per block of ``block``."""
    n = flat.size
    if block >= n:
        block = 0  # one block covers the tensor: say so with 0
    nb = _num_blocks(n, block)
    padded = np.zeros(nb * (block or n), dtype=np.float32)
    padded[:n] = flat
    rows = padded.reshape(nb, -1) if n else padded.reshape(1, 0)
    scales = (np.abs(rows).max(axis=1) / 127.0).astype(np.float32) if n else np.zeros(1, np.float32)
    scales = np.minimum(scales, np.float32(Q8_MAX_SCALE))  # 127 * scale must stay finite
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    q = np.clip(np.rint(rows / safe[:, None]), -127, 127).astype(np.int8).reshape(-1)[:n]
    return q, scales, block


def _topk(flat: F32Array, spec: EncodingSpec) -> tuple[bytes, dict[str, Any]]:
    n = flat.size
    k = min(n, max(1, math.ceil(spec.fraction * n))) if n else 0
    idx = np.sort(np.argpartition(np.abs(flat), n - k)[n - k :]) if k else np.zeros(0, np.int64)
    vals = flat[idx]
    fields: dict[str, Any] = {"k": k, "values": spec.values}
    if spec.values == "f16":
        vbytes = _to_f16(vals)
    else:
        q, scales, _ = _quantize(vals, 0)
        vbytes = q.tobytes()
        fields["scale"] = float(scales[0])
    return idx.astype("<u4").tobytes() + vbytes, fields


# -- many tensors --------------------------------------------------------------


def encode_tensors(
    arrays: Mapping[str, npt.ArrayLike], spec: EncodingSpec | str = "f32"
) -> dict[str, Tensor]:
    return {name: Tensor.encode(a, spec) for name, a in arrays.items()}


def decode_tensors(tensors: Mapping[str, Tensor]) -> dict[str, F32Array]:
    return {name: t.decode() for name, t in tensors.items()}


__all__ = [  # EncodingSpec and its names stay importable from here, where they began
    "ENCODINGS",
    "TOPK_VALUES",
    "EncodingSpec",
    "F32Array",
    "Tensor",
    "decode_tensors",
    "encode_tensors",
    "zlib_bound",
]
