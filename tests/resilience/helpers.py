"""Shared helpers for the resilience tests."""

from __future__ import annotations

from typing import Any

import trio

from voicebot.errors import ProviderError
from voicebot.resilience import BreakerEvent, BreakerEventKind, CircuitBreaker, CircuitState


async def ok(delay: float = 0.0) -> str:
    """Succeed after ``delay`` virtual seconds."""
    await trio.sleep(delay)
    return "ok"


async def boom(delay: float = 0.0) -> None:
    """Fail with a retryable ProviderError after ``delay`` virtual seconds."""
    await trio.sleep(delay)
    raise ProviderError("provider down")


class Recorder:
    """A listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def transitions(self) -> list[tuple[CircuitState | None, CircuitState | None, float]]:
        """(from, to, at) of every breaker state transition."""
        return [
            (e.from_state, e.to_state, e.at) for e in self.events
            if isinstance(e, BreakerEvent) and e.kind is BreakerEventKind.STATE_TRANSITION
        ]

    def kinds(self) -> list[str]:
        """Kinds of all events, as strings."""
        return [str(e.kind) for e in self.events]


def recorded(breaker: CircuitBreaker) -> Recorder:
    """Attach and return a Recorder."""
    rec = Recorder()
    breaker.add_listener(rec)
    return rec
