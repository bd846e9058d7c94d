"""Codec benchmark: ``python -m bench.codec [--params N] [--repeats R]``.

For one synthetic delta of N float32 parameters (default 1M) and each tensor
encoding it reports, as JSON lines on stdout (medians over R repeats):

- ``encode_mb_per_s`` / ``decode_mb_per_s``: float32 megabytes (N*4/1e6) per
  second through ``Tensor.encode`` / ``from_wire`` + ``Tensor.decode``, so that
  encodings compare on the same input;
- ``bytes_per_delta``: the whole encoded delta message, and ``ratio_to_f32``
  against raw float32 (N*4 bytes);
- for the raw ``data`` of each encoding, zlib (level 6, what the protocol uses)
  against zstd (levels 3 and 19, if ``zstandard`` is installed):
  ``compressed_ratio`` (compressed / uncompressed), ``compress_mb_per_s`` and
  ``decompress_mb_per_s`` (uncompressed MB per second).

The delta imitates a trained update: Gaussian values whose scale varies from
row to row of 1,000 parameters (exponentially distributed), so quantisation
and compression meet both tiny and large magnitudes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedmq import codec
from fedmq.messages import Delta
from fedmq.tensors import EncodingSpec, Tensor

ENCODINGS = ("f32", "f16", "q8:0", "q8:256", "topk:0.01:f16", "topk:0.01:q8")
ROW = 1000


def synthetic_delta(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    rows = -(-n // ROW)
    scale = rng.exponential(1e-3, rows).repeat(ROW)[:n]
    return (rng.standard_normal(n) * scale).astype(np.float32)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def emit(metric: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "codec", "metric": metric, "value": round(value, 6), "unit": unit, **params}
    sys.stdout.write(json.dumps(line) + "\n")


def bench_encoding(x: npt.NDArray[np.float32], spec: str, repeats: int) -> bytes:
    """Speed and size of one encoding; returns its raw (uncompressed) data."""
    n = x.size
    mb = n * 4 / 1e6
    tensor = Tensor.encode(x, spec)
    wire = tensor.to_wire()
    enc_s = median_seconds(lambda: Tensor.encode(x, spec), repeats)
    dec_s = median_seconds(lambda: Tensor.from_wire(wire).decode(), repeats)
    size = len(codec.encode(Delta("bench", "dev", "u", 0, 1, {"w": tensor}, 0.0)))
    common = {"encoding": spec, "params": n, "repeats": repeats}
    emit("encode_mb_per_s", mb / enc_s, "MB/s", **common)
    emit("decode_mb_per_s", mb / dec_s, "MB/s", **common)
    emit("bytes_per_delta", size, "bytes", **common)
    emit("ratio_to_f32", size / (n * 4), "ratio", **common)
    return tensor.raw()


def compressors() -> dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    out: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zlib-6": (lambda b: zlib.compress(b, 6), zlib.decompress),
    }
    try:
        import zstandard
    except ImportError:  # optional: the protocol itself never needs zstd
        return out
    for level in (3, 19):
        cctx = zstandard.ZstdCompressor(level=level)
        dctx = zstandard.ZstdDecompressor()
        out[f"zstd-{level}"] = (cctx.compress, dctx.decompress)
    return out


def bench_compression(raw: bytes, spec: str, n: int, repeats: int) -> None:
    mb = len(raw) / 1e6
    for name, (compress, decompress) in compressors().items():
        packed = compress(raw)
        c_s = median_seconds(lambda c=compress: c(raw), repeats)  # type: ignore[misc]
        d_s = median_seconds(lambda d=decompress, p=packed: d(p), repeats)  # type: ignore[misc]
        common = {"encoding": spec, "compressor": name, "params": n, "repeats": repeats}
        emit("compressed_ratio", len(packed) / len(raw), "ratio", **common)
        emit("compress_mb_per_s", mb / c_s, "MB/s", **common)
        emit("decompress_mb_per_s", mb / d_s, "MB/s", **common)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.codec", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--params", type=int, default=1_000_000, help="parameters in the delta")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--encodings", default=",".join(ENCODINGS), help="comma-separated specs")
    args = parser.parse_args(argv)
    if args.params < 1 or args.repeats < 1:
        parser.error("--params and --repeats must be positive")
    x = synthetic_delta(args.params)
    for spec in args.encodings.split(","):
        EncodingSpec.parse(spec)  # fail fast on a typo
        raw = bench_encoding(x, spec, args.repeats)
        bench_encoding(x, spec + "+zlib", args.repeats)
        bench_compression(raw, spec, args.params, args.repeats)
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    sys.exit(run_module(main))
