"""Per-client error budget: a client that keeps producing errors is closed with 1008."""

from __future__ import annotations

import collections

__all__ = ["ErrorBudget"]


class ErrorBudget:
    """Sliding-window counter (sans-IO: the caller passes ``now`` from Trio's clock).

    ``ErrorBudget(limit=20, window=10.0)``: the 20th error within 10 s exhausts the budget. Every connection has
    one, and most never spend it: the window's deque is created at the first error.
    """

    __slots__ = ("_times", "limit", "window")

    def __init__(self, limit: int = 20, window: float = 10.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._times: collections.deque[float] | None = None

    def spend(self, now: float) -> bool:
        """Record one error at ``now``; return True when the budget is now exhausted."""
        if self._times is None:
            self._times = collections.deque()
        times = self._times
        times.append(now)
        cutoff = now - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return len(times) >= self.limit

    @property
    def used(self) -> int:
        """Errors currently inside the window (as of the last :meth:`spend`)."""
        return len(self._times) if self._times is not None else 0
