"""Per-connection request rate limit: a token bucket on Trio's clock (sans-IO: the caller passes ``now``)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; each request takes one."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float | None:
        """Take a token at ``now``: None when allowed, else the seconds until one is available."""
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate

    def give_back(self) -> None:
        """Return one token taken by :meth:`take` (never beyond ``burst``)."""
        self._tokens = min(float(self.burst), self._tokens + 1.0)
