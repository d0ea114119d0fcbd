"""Exponential backoff with jitter drawn from an injected ``random.Random``."""

from __future__ import annotations

import math
import random
from typing import Any, Literal

import attrs

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["none", "full", "equal"] | float
"""``"none"``; ``"full"``: uniform(0, d); ``"equal"``: d/2 + uniform(0, d/2); a float f in (0, 1]: d*(1 +- f)."""


def _check_jitter(_inst: object, _attr: attrs.Attribute[Any], value: Jitter) -> None:
    if isinstance(value, str):
        if value not in ("none", "full", "equal"):
            raise ValueError(f"unknown jitter mode {value!r}")
    elif not 0 <= value <= 1:
        raise ValueError(f"proportional jitter must be in [0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """``base_delay * multiplier ** (n - 1)`` capped at ``max_delay``, then jittered (n = 1 for the first wait)."""

    base_delay: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.ge(0.0))
    jitter: Jitter = attrs.field(default="equal", validator=_check_jitter)

    def raw(self, n: int) -> float:
        """The un-jittered, capped delay before retry ``n`` (1-based)."""
        try:
            delay = self.base_delay * self.multiplier ** max(n - 1, 0)
        except OverflowError:
            delay = math.inf
        return min(delay, self.max_delay)

    def bounds(self, n: int) -> tuple[float, float]:
        """The closed interval the jittered delay before retry ``n`` falls in."""
        d = self.raw(n)
        if self.jitter == "none":
            return d, d
        if self.jitter == "full":
            return 0.0, d
        if self.jitter == "equal":
            return d / 2, d
        assert not isinstance(self.jitter, str)
        return d * (1 - self.jitter), min(d * (1 + self.jitter), self.max_delay)

    def delay(self, n: int, rng: random.Random) -> float:
        """The jittered delay before retry ``n``; draws from ``rng`` exactly once unless jitter is none."""
        d = self.raw(n)
        if self.jitter == "none":
            return d
        if self.jitter == "full":
            return rng.uniform(0.0, d)
        if self.jitter == "equal":
            return d / 2 + rng.uniform(0.0, d / 2)
        assert not isinstance(self.jitter, str)
        low, high = self.bounds(n)
        return min(max(d * (1 + rng.uniform(-self.jitter, self.jitter)), low), high)
