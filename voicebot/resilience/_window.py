"""Sans-IO sliding windows of call outcomes (count-based ring buffer, or time-based 1 s buckets)."""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import attrs

__all__ = ["CountWindow", "SlidingWindow", "TimeWindow", "WindowCounts"]


@attrs.frozen
class WindowCounts:
    """Aggregated outcomes currently inside a window."""

    total: int = 0
    failed: int = 0
    slow: int = 0
    slow_failed: int = 0

    @property
    def successful(self) -> int:
        """Calls that did not fail."""
        return self.total - self.failed

    @property
    def failure_rate(self) -> float:
        """Failed calls as a percentage of all calls (0.0 for an empty window)."""
        return 100.0 * self.failed / self.total if self.total else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls (successful or not) as a percentage of all calls (0.0 for an empty window)."""
        return 100.0 * self.slow / self.total if self.total else 0.0


class SlidingWindow(Protocol):
    """What the breaker core needs from a window."""

    def record(self, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome observed at ``now``."""

    def counts(self, now: float) -> WindowCounts:
        """The aggregate of the outcomes still inside the window at ``now``."""


class CountWindow:
    """The last ``size`` outcomes (resilience4j COUNT_BASED)."""

    def __init__(self, size: int) -> None:
        """Create an empty window holding at most ``size`` outcomes."""
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self._items: deque[tuple[bool, bool]] = deque()
        self._total = self._failed = self._slow = self._slow_failed = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome, evicting the oldest when full (``now`` is unused)."""
        if len(self._items) == self.size:
            self._add(*self._items.popleft(), sign=-1)
        self._items.append((failed, slow))
        self._add(failed, slow, sign=1)

    def _add(self, failed: bool, slow: bool, *, sign: int) -> None:
        self._total += sign
        self._failed += sign * failed
        self._slow += sign * slow
        self._slow_failed += sign * (slow and failed)

    def counts(self, now: float) -> WindowCounts:
        """Aggregate of the buffered outcomes (``now`` is unused)."""
        return WindowCounts(self._total, self._failed, self._slow, self._slow_failed)


@attrs.define
class _Bucket:
    second: int
    total: int = 0
    failed: int = 0
    slow: int = 0
    slow_failed: int = 0


class TimeWindow:
    """Outcomes of the last ``seconds`` seconds, in 1-second buckets (resilience4j TIME_BASED).

    At time ``now`` the window holds outcomes recorded at times ``t`` with
    ``floor(t) > floor(now) - seconds``: the current partial second plus ``seconds - 1`` whole ones.
    """

    def __init__(self, seconds: int) -> None:
        """Create an empty window spanning ``seconds`` one-second buckets."""
        if seconds < 1:
            raise ValueError("window size must be >= 1 second")
        self.seconds = seconds
        self._buckets: deque[_Bucket] = deque()
        self._sum = _Bucket(second=0)

    def _evict(self, now: float) -> None:
        oldest_kept = math.floor(now) - self.seconds + 1
        while self._buckets and self._buckets[0].second < oldest_kept:
            gone = self._buckets.popleft()
            self._sum.total -= gone.total
            self._sum.failed -= gone.failed
            self._sum.slow -= gone.slow
            self._sum.slow_failed -= gone.slow_failed

    def record(self, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome observed at ``now`` (times must not go backwards)."""
        self._evict(now)
        second = math.floor(now)
        if not self._buckets or self._buckets[-1].second < second:
            self._buckets.append(_Bucket(second=second))
        for bucket in (self._buckets[-1], self._sum):
            bucket.total += 1
            bucket.failed += failed
            bucket.slow += slow
            bucket.slow_failed += slow and failed

    def counts(self, now: float) -> WindowCounts:
        """Aggregate of the outcomes still inside the window at ``now``."""
        self._evict(now)
        s = self._sum
        return WindowCounts(s.total, s.failed, s.slow, s.slow_failed)
