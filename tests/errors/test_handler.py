"""ErrorHandler: severity policy, statistics on Trio's clock, listeners, recovery dispatch, error budget."""

from __future__ import annotations

import random

import pytest
import trio

from voicebot.errors import (
    Category,
    Decision,
    ErrorBudget,
    ErrorContext,
    ErrorHandler,
    IdFactory,
    LobbyError,
    Severity,
    VoiceBotError,
)


def _handler() -> ErrorHandler:
    return ErrorHandler(ids=IdFactory(random.Random(3)), rate_window=10.0, keep_last=3)


def test_severity_policy() -> None:
    handler = _handler()
    ctx = ErrorContext("c1", peer_id="p1", lobby_id="l1")
    low = handler.handle(LobbyError("full", code="lobby_full"), ctx.request("lobby.join", 7))
    assert low.close is None and low.recovery is None
    assert low.reply == {"type": "error", "reply_to": 7, "code": "lobby_full", "category": "lobby",
                         "severity": "low", "message": "full", "retryable": False, "correlation_id": "c1.1"}
    medium = handler.handle(trio.TooSlowError(), ctx)
    assert medium.close is None and medium.recovery == "resend_state"
    named = handler.handle(VoiceBotError("x", severity=Severity.MEDIUM, recovery="ice_restart"), ctx)
    assert named.recovery == "ice_restart"
    high = handler.handle(RuntimeError("internal detail"), ctx)
    assert high.close == (1011, "internal server error") and "internal detail" not in str(high.reply)
    custom = handler.handle(VoiceBotError("bye", severity=Severity.HIGH, close_code=4009), ctx)
    assert custom.close == (4009, "bye")
    assert handler.healthy
    critical = handler.handle(MemoryError(), ctx)
    assert critical.close is not None
    stats = handler.get_error_statistics()
    assert stats["healthy"] is False and stats["unhealthy"]["system"]["code"] == "out_of_memory"
    handler.mark_healthy("system")
    assert handler.healthy


async def test_statistics_counts_rate_window_and_recent(autojump_clock: object) -> None:
    handler = _handler()
    ctx = ErrorContext("c")
    for _ in range(4):
        handler.handle(LobbyError("full", code="lobby_full"), ctx)
    handler.handle(RuntimeError(), ctx)
    stats = handler.get_error_statistics()
    assert stats["total"] == 5
    assert stats["by_category"] == {"lobby": {"low": {"lobby_full": 4}}, "system": {"high": {"internal_error": 1}}}
    assert stats["by_severity"] == {"high": 1, "low": 4}
    assert stats["rate_per_second"] == pytest.approx(0.5)
    assert len(stats["recent"]) == 3 and stats["recent"][-1]["code"] == "internal_error"
    assert stats["closes"] == {"1011": 1}
    await trio.sleep(10)
    assert handler.rate() == 0.0
    assert handler.count("lobby_full") == 4 and handler.count("lobby_full", Category.SYSTEM) == 0


async def test_listeners_sources_and_recovery_dispatch(autojump_clock: object) -> None:
    handler = _handler()
    seen: list[str] = []
    handler.add_listener(lambda record, error: seen.append(record.code))

    def broken(record: object, error: object) -> None:
        raise RuntimeError("listener bug")

    handler.add_listener(broken)
    handler.add_source("breakers", lambda: {"store": "closed"})
    ran: list[Decision] = []

    async def resend(decision: Decision) -> None:
        ran.append(decision)

    decision = handler.handle(trio.TooSlowError(), ErrorContext("c"))
    await handler.recover(decision, {"resend_state": resend})
    await handler.recover(decision, {})
    assert seen == ["timeout"] and ran == [decision]
    stats = handler.get_error_statistics()
    assert stats["breakers"] == {"store": "closed"}
    assert stats["recoveries"] == {"resend_state": 1, "resend_state:missing": 1}


def test_capture_reraises_control_flow_after_counting_failures() -> None:
    handler = _handler()
    with pytest.raises(BaseExceptionGroup) as info:
        handler.capture(BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError()]), ErrorContext("c"))
    assert isinstance(info.value.exceptions[0], KeyboardInterrupt)
    assert handler.total == 1
    with pytest.raises(KeyboardInterrupt):
        handler.capture(KeyboardInterrupt(), ErrorContext("c"))
    assert handler.total == 1
    assert handler.capture(ValueError(), ErrorContext("c")) is not None


def test_error_budget_sliding_window() -> None:
    budget = ErrorBudget(limit=3, window=10.0)
    assert not budget.spend(0.0) and not budget.spend(1.0)
    assert not budget.spend(10.5)  # the first fell out of the window
    assert budget.spend(10.6)
    with pytest.raises(ValueError, match="limit"):
        ErrorBudget(limit=0)


def test_correlation_ids_are_deterministic_under_seed() -> None:
    a, b = IdFactory(random.Random(9)), IdFactory(random.Random(9))
    assert [a.new() for _ in range(3)] == [b.new() for _ in range(3)]
    ctx = ErrorContext("x")
    assert [ctx.request(None).correlation_id for _ in range(2)] == ["x.1", "x.2"]
