"""Per-client error budget: a client that keeps producing errors is closed with 1008."""

from __future__ import annotations

import collections

__all__ = ["ErrorBudget"]


class ErrorBudget:
    """Sliding-window counter (sans-IO: the caller passes ``now`` from Trio's clock).

    ``ErrorBudget(limit=20, window=10.0)``: the 20th error within 10 s exhausts the budget.
    """

    def __init__(self, limit: int = 20, window: float = 10.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def spend(self, now: float) -> bool:
        """Record one error at ``now``; return True when the budget is now exhausted."""
        self._times.append(now)
        cutoff = now - self.window
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()
        return len(self._times) >= self.limit

    @property
    def used(self) -> int:
        """Errors currently inside the window (as of the last :meth:`spend`)."""
        return len(self._times)
