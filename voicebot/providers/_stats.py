"""Per-provider statistics for ``admin.stats``: calls, outcomes, fallbacks, latency percentiles.

One :class:`ProviderStats` per process by default (:data:`PROVIDER_STATS`), shared like the breakers, so the
numbers describe the provider, not one bot. Latencies are kept in a bounded ring (the last
:data:`LATENCY_SAMPLES` calls), so memory stays constant whatever the uptime.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from typing import Any

import attrs

__all__ = ["LATENCY_SAMPLES", "PROVIDER_STATS", "ProviderStats", "percentile"]

LATENCY_SAMPLES = 512
"""Latency samples kept per provider (newest win)."""


def percentile(values: Collection[float], q: float) -> float | None:
    """The ``q`` (0–100) percentile by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@attrs.define
class _Entry:
    calls: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    circuit_open: int = 0
    fallbacks: int = 0
    midstream_failures: int = 0
    latencies: deque[float] = attrs.field(factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def as_dict(self) -> dict[str, Any]:
        values = list(self.latencies)
        return {
            "calls": self.calls,
            "ok": self.ok,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "circuit_open": self.circuit_open,
            "failures": self.errors + self.timeouts,
            "fallbacks": self.fallbacks,
            "midstream_failures": self.midstream_failures,
            "latency_p50": percentile(values, 50),
            "latency_p95": percentile(values, 95),
            "latency_p99": percentile(values, 99),
            "latency_samples": len(values),
        }


class ProviderStats:
    """Counters per ``(kind, provider)`` plus whole-chain failures per kind.

    ``calls`` counts attempts (retries included); ``ok``/``errors``/``timeouts``/``circuit_open`` count their
    outcomes (as ``voicebot_provider_requests_total`` does); ``fallbacks`` counts calls that moved on from this
    provider to the next of its chain; ``midstream_failures`` counts streams that broke after their first
    piece; latency is the time to the first result (STT text, first token, first audio) of successful calls.
    """

    def __init__(self) -> None:
        """Empty statistics."""
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._exhausted: dict[str, int] = {}

    def entry(self, kind: str, provider: str) -> _Entry:
        """The mutable counters of one provider (created on first use)."""
        key = (kind, provider)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = _Entry()
        return found

    def chain_failed(self, kind: str) -> None:
        """Count one call for which every provider of ``kind``'s chain failed."""
        self._exhausted[kind] = self._exhausted.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: ``{kind: {"providers": {name: {...}}, "chain_failures": n}}``."""
        out: dict[str, Any] = {}
        for (kind, name), entry in sorted(self._entries.items()):
            out.setdefault(kind, {"providers": {}, "chain_failures": 0})["providers"][name] = entry.as_dict()
        for kind, count in self._exhausted.items():
            out.setdefault(kind, {"providers": {}, "chain_failures": 0})["chain_failures"] = count
        return out

    def reset(self) -> None:
        """Forget everything (tests)."""
        self._entries.clear()
        self._exhausted.clear()


PROVIDER_STATS = ProviderStats()
"""This process's provider statistics (every bot's :class:`~voicebot.providers.Providers` feeds it)."""
