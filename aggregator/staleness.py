"""Staleness weights ``f(s)`` (PROTOCOL.md, "Staleness and weighting") from ``--staleness``.

``constant`` (1), ``polynomial:a`` ((1+s)^-a), ``hinge:a,b`` (1 if s <= b else
1/(a(s-b)+1)) and ``fedbuff`` ((1+s)^-1/2). Every weight is in (0, 1] for
``s >= 0``, so a stale update is discounted but never reversed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmq.errors import ConfigError

KINDS = ("constant", "polynomial", "hinge", "fedbuff")


@dataclass(frozen=True, slots=True)
class Staleness:
    """One staleness function; ``weight(s)`` for staleness ``s >= 0``."""

    kind: str = "constant"
    a: float = 0.5
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown staleness function {self.kind!r}; choose one of {KINDS}")
        if not (self.a >= 0.0 and self.b >= 0.0):  # also refuses NaN
            raise ConfigError(f"staleness parameters must be >= 0, got a={self.a}, b={self.b}")

    def weight(self, s: int) -> float:
        if s < 0:
            raise ValueError(f"staleness must be >= 0, got {s}")
        if self.kind == "constant":
            return 1.0
        if self.kind == "polynomial":
            return float((1.0 + s) ** -self.a)
        if self.kind == "fedbuff":
            return float((1.0 + s) ** -0.5)
        if s <= self.b:
            return 1.0
        return 1.0 / (self.a * (s - self.b) + 1.0)

    @classmethod
    def parse(cls, text: str) -> Staleness:
        """``constant`` | ``polynomial:a`` | ``hinge:a,b`` | ``fedbuff``."""
        kind, _, args = text.strip().partition(":")
        try:
            if kind in ("constant", "fedbuff") and not args:
                return cls(kind)
            if kind == "polynomial" and args:
                return cls(kind, a=float(args))
            if kind == "hinge" and args.count(",") == 1:
                a, b = args.split(",")
                return cls(kind, a=float(a), b=float(b))
        except ValueError as exc:
            raise ConfigError(f"bad staleness function {text!r}: {exc}") from exc
        raise ConfigError(
            f"bad staleness function {text!r}: use constant, polynomial:a, hinge:a,b or fedbuff"
        )

    def __str__(self) -> str:
        if self.kind == "polynomial":
            return f"polynomial:{self.a:g}"
        if self.kind == "hinge":
            return f"hinge:{self.a:g},{self.b:g}"
        return self.kind
