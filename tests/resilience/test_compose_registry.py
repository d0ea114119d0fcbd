"""Retry around breaker (the wiring the project uses) and the shared breaker registry."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from voicebot.errors import ProviderError
from voicebot.resilience import (
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RetryEventKind,
    RetryStrategy,
)

from .helpers import Recorder, ok, recorded


async def test_retry_honours_open_breaker_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker("provider", failure_threshold=2, recovery_timeout=10.0)
    rec = Recorder()
    retry = RetryStrategy(max_attempts=5, base_delay=1.0, jitter="none", listeners=[rec])
    calls: list[float] = []

    async def provider(prompt: str) -> str:
        calls.append(trio.current_time())
        raise ProviderError(f"no answer to {prompt}")

    with pytest.raises(CircuitOpenError) as info:
        await retry.call(breaker.call, provider, "hi")
    attempts = [e.at for e in rec.events if e.kind is RetryEventKind.ATTEMPT]
    # 0 fail, +1 fail (opens until 11), +2 rejected (retry_after 8 > backoff 4), 11 probe fails (open until 21),
    # +8 rejected at 19 -> attempts exhausted.
    assert attempts == [0.0, 1.0, 3.0, 11.0, 19.0]
    assert calls == [0.0, 1.0, 11.0]  # the provider was never called while the breaker was open
    assert breaker.metrics()["not_permitted_calls"] == 2
    assert info.value.retry_after == 2.0
    scheduled = [e.delay for e in rec.events if e.kind is RetryEventKind.RETRY_SCHEDULED]
    assert scheduled == [1.0, 2.0, 8.0, 8.0]


async def test_retry_through_breaker_recovers(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, recovery_timeout=5.0)
    retry = RetryStrategy(max_attempts=3, base_delay=1.0, jitter="none")
    state = {"down": True}

    async def query() -> str:
        if state["down"]:
            state["down"] = False
            raise ProviderError()
        return "row"

    assert await retry.call(breaker.call, query) == "row"
    assert trio.current_time() == 5.0  # waited for the breaker's retry_after, not 1 s + 2 s hammering
    assert breaker.state is CircuitState.CLOSED


async def test_cancel_during_breaker_call_inside_retry(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker("slow", minimum_number_of_calls=1)
    retry = RetryStrategy(max_attempts=5, base_delay=1.0, jitter="none")
    with trio.move_on_after(3.0):
        await retry.call(breaker.call, ok, 100.0)
    assert trio.current_time() == 3.0
    assert breaker.metrics()["buffered_calls"] == 0


async def test_registry_shares_breakers_and_snapshots(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    registry = BreakerRegistry(BreakerConfig(minimum_number_of_calls=1), listeners=[rec])
    db = registry.get("persistence")
    assert registry.get("persistence") is db
    assert registry.get("persistence", config=db.config) is db
    with pytest.raises(ValueError, match="different configuration"):
        registry.get("persistence", minimum_number_of_calls=5)
    bot = registry.get("provider:echo", failure_threshold=3, recovery_timeout=1.0)
    assert bot.config.wait_duration_in_open_state == 1.0
    late = Recorder()
    registry.add_listener(late)
    with pytest.raises(ProviderError):
        await db.call(_boom)
    assert db.state is CircuitState.OPEN
    snapshot = registry.snapshot()
    assert set(snapshot) == {"persistence", "provider:echo"}
    assert snapshot["persistence"]["state"] == "open"
    assert snapshot["provider:echo"]["state"] == "closed"
    json.dumps(snapshot)
    assert [e.kind for e in rec.events] == [e.kind for e in late.events]
    assert "persistence" in registry
    assert len(registry) == 2
    assert [b.name for b in registry] == ["persistence", "provider:echo"]
    assert registry.remove("provider:echo") is bot
    recorded(db)


async def _boom() -> None:
    raise ProviderError()


MODULE_LEVEL = CircuitBreaker("created-at-import", minimum_number_of_calls=1)


def test_breaker_created_outside_trio_anchors_its_clock_on_first_use() -> None:
    async def main() -> None:
        assert trio.current_time() > 1000.0  # Trio's real clock has a large random offset
        assert await MODULE_LEVEL.call(ok) == "ok"
        assert MODULE_LEVEL.metrics()["time_in_state"] < 1.0
        with pytest.raises(ProviderError):
            await MODULE_LEVEL.call(_boom)
        assert MODULE_LEVEL.state is CircuitState.OPEN
        assert MODULE_LEVEL.metrics()["retry_after"] == pytest.approx(30.0, abs=1.0)

    trio.run(main)
