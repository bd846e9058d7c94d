"""Delta encodings by name: f32, f16, q8[:BLOCK], topk[:FRACTION[:f16|q8]], each +zlib or not.

The byte layouts behind each name are in :mod:`fedmq.tensors` and PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmq.errors import ConfigError

ENCODINGS = ("f32", "f16", "q8", "topk")
TOPK_VALUES = ("f16", "q8")


@dataclass(frozen=True, slots=True)
class EncodingSpec:
    """How a device encodes its delta, parsed from strings such as ``q8:256+zlib``.

    Grammar: ``f32`` | ``f16`` | ``q8[:BLOCK]`` | ``topk[:FRACTION[:f16|q8]]``,
    optionally followed by ``+zlib``. ``BLOCK`` 0 means one scale per tensor.
    """

    kind: str = "f32"
    block: int = 0
    fraction: float = 0.01
    values: str = "f16"
    compress: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ENCODINGS:
            raise ConfigError(f"unknown encoding {self.kind!r}; choose one of {ENCODINGS}")
        if self.block < 0:
            raise ConfigError(f"q8 block must be >= 0, got {self.block}")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"topk fraction must be in (0, 1], got {self.fraction}")
        if self.values not in TOPK_VALUES:
            raise ConfigError(f"topk values must be one of {TOPK_VALUES}, got {self.values!r}")

    @property
    def lossy(self) -> bool:
        return self.kind != "f32"

    @classmethod
    def parse(cls, text: str) -> EncodingSpec:
        body, plus, comp = text.strip().partition("+")
        if plus and comp != "zlib":
            raise ConfigError(f"unknown compression {comp!r} in {text!r}; only 'zlib'")
        kind, *args = body.split(":")
        try:
            if kind == "q8" and len(args) <= 1:
                return cls("q8", block=int(args[0]) if args else 0, compress=bool(plus))
            if kind == "topk" and len(args) <= 2:
                fraction = float(args[0]) if args else 0.01
                values = args[1] if len(args) == 2 else "f16"
                return cls("topk", fraction=fraction, values=values, compress=bool(plus))
            if kind in ("f32", "f16") and not args:
                return cls(kind, compress=bool(plus))
        except ValueError as exc:
            raise ConfigError(f"bad encoding spec {text!r}: {exc}") from exc
        raise ConfigError(f"bad encoding spec {text!r}")

    def __str__(self) -> str:
        text = self.kind
        if self.kind == "q8":
            text += f":{self.block}"
        elif self.kind == "topk":
            text += f":{self.fraction!r}:{self.values}"
        return text + ("+zlib" if self.compress else "")

