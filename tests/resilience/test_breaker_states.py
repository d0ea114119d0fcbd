"""Every transition of the breaker state machine, with exact virtual timings."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from voicebot.errors import ProviderError, ValidationError
from voicebot.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    IllegalStateTransition,
    WindowType,
)

from .helpers import boom, ok, recorded

S = CircuitState


def state(breaker: CircuitBreaker) -> CircuitState:
    """The breaker's state (a call, so mypy does not narrow it across awaits)."""
    return breaker.state


def rate_breaker(**overrides: Any) -> CircuitBreaker:
    options: dict[str, Any] = {
        "sliding_window_size": 10, "minimum_number_of_calls": 4, "failure_rate_threshold": 50.0,
        "wait_duration_in_open_state": 10.0, "permitted_calls_in_half_open": 2,
    }
    options.update(overrides)
    return CircuitBreaker("svc", **options)


async def fail(breaker: CircuitBreaker, times: int = 1, delay: float = 0.0) -> None:
    for _ in range(times):
        with pytest.raises(ProviderError):
            await breaker.call(boom, delay)


async def test_closed_to_open_on_failure_rate(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker()
    rec = recorded(breaker)
    assert await breaker.call(ok, 1.0) == "ok"
    assert await breaker.call(ok, 1.0) == "ok"
    await fail(breaker, 1, 1.0)
    assert state(breaker) is S.CLOSED  # 3 calls < minimum_number_of_calls
    assert breaker.metrics()["failure_rate"] is None
    await fail(breaker, 1, 1.0)  # 2 of 4 failed = 50 %
    assert trio.current_time() == 4.0
    assert state(breaker) is S.OPEN
    assert rec.transitions() == [(S.CLOSED, S.OPEN, 4.0)]
    wire = [e.to_dict() for e in rec.events]
    assert wire[-2] == {
        "kind": "error", "breaker": "svc", "at": 4.0, "state": "closed", "duration": 1.0,
        "exception": "ProviderError", "code": "provider_error",
    }
    assert wire[-1]["from_state"] == "closed"
    assert wire[-1]["to_state"] == "open"
    json.dumps(wire)
    await trio.sleep(4.0)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.retryable
    assert info.value.retry_after == 6.0
    assert info.value.code == "circuit_open"
    assert info.value.context["breaker"] == "svc"
    assert breaker.metrics()["not_permitted_calls"] == 1


async def test_open_to_half_open_after_wait_reported_by_state(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker()
    rec = recorded(breaker)
    breaker.transition_to_open()
    await trio.sleep(9.999)
    assert state(breaker) is S.OPEN
    await trio.sleep(0.001)
    assert state(breaker) is S.HALF_OPEN  # no call needed: the clock decides
    assert rec.transitions() == [(S.CLOSED, S.OPEN, 0.0), (S.OPEN, S.HALF_OPEN, 10.0)]


async def test_half_open_to_closed_and_to_open(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker()
    rec = recorded(breaker)
    breaker.transition_to_open()
    await trio.sleep(10.0)
    assert await breaker.call(ok, 1.0) == "ok"
    assert state(breaker) is S.HALF_OPEN
    assert await breaker.call(ok, 1.0) == "ok"
    assert state(breaker) is S.CLOSED
    assert rec.transitions()[-1] == (S.HALF_OPEN, S.CLOSED, 12.0)
    assert breaker.metrics()["buffered_calls"] == 0  # a fresh window after closing
    # Trip again and fail one of two probes: 50 % >= threshold -> OPEN.
    breaker.transition_to_open()
    await trio.sleep(10.0)
    await breaker.call(ok)
    await fail(breaker)
    assert rec.transitions()[-1] == (S.HALF_OPEN, S.OPEN, 22.0)
    assert state(breaker) is S.OPEN


async def test_max_wait_in_half_open_goes_back_to_open(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(max_wait_in_half_open=5.0, permitted_calls_in_half_open=2)
    rec = recorded(breaker)
    breaker.transition_to_open()
    await trio.sleep(10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.call, ok, 100.0)  # a probe that never finishes in time
        await trio.sleep(4.0)
        assert state(breaker) is S.HALF_OPEN
        await trio.sleep(1.0)
        assert state(breaker) is S.OPEN
    assert rec.transitions() == [
        (S.CLOSED, S.OPEN, 0.0), (S.OPEN, S.HALF_OPEN, 10.0), (S.HALF_OPEN, S.OPEN, 15.0),
        (S.OPEN, S.HALF_OPEN, 25.0), (S.HALF_OPEN, S.OPEN, 30.0), (S.OPEN, S.HALF_OPEN, 40.0),
        (S.HALF_OPEN, S.OPEN, 45.0), (S.OPEN, S.HALF_OPEN, 55.0), (S.HALF_OPEN, S.OPEN, 60.0),
        (S.OPEN, S.HALF_OPEN, 70.0), (S.HALF_OPEN, S.OPEN, 75.0), (S.OPEN, S.HALF_OPEN, 85.0),
        (S.HALF_OPEN, S.OPEN, 90.0), (S.OPEN, S.HALF_OPEN, 100.0), (S.HALF_OPEN, S.OPEN, 105.0),
    ]
    assert trio.current_time() == 110.0
    # The stale probe's success (admitted many generations ago) was reported but not counted.
    assert state(breaker) is S.OPEN
    assert rec.kinds()[-1] == "success"
    await trio.sleep(5.0)
    assert state(breaker) is S.HALF_OPEN
    assert breaker.metrics()["buffered_calls"] == 0


async def test_growing_open_wait_is_capped_and_resets_on_close(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(open_wait_multiplier=2.0, max_wait_duration_in_open_state=25.0,
                           permitted_calls_in_half_open=1)
    rec = recorded(breaker)
    breaker.transition_to_open()  # wait 10
    await trio.sleep(10.0)
    await fail(breaker)  # second opening: wait 20
    assert breaker.metrics()["retry_after"] == 20.0
    await trio.sleep(20.0)
    await fail(breaker)  # third opening: 40, capped at 25
    assert breaker.metrics()["retry_after"] == 25.0
    await trio.sleep(25.0)
    await breaker.call(ok)
    assert state(breaker) is S.CLOSED
    breaker.transition_to_open()  # back to the base wait
    assert breaker.metrics()["retry_after"] == 10.0
    assert [t[2] for t in rec.transitions()] == [0.0, 10.0, 10.0, 30.0, 30.0, 55.0, 55.0, 55.0]


async def test_forced_open_disabled_reset(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker()
    rec = recorded(breaker)
    breaker.force_open()
    await trio.sleep(1000.0)
    assert state(breaker) is S.FORCED_OPEN  # never moves on by itself
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.retry_after == 10.0
    breaker.disable()
    await fail(breaker, 20)
    assert state(breaker) is S.DISABLED  # failures are not evaluated
    assert await breaker.call(ok) == "ok"
    breaker.reset()
    assert state(breaker) is S.CLOSED
    breaker.reset()  # reset is allowed from CLOSED too
    assert rec.transitions() == [
        (S.CLOSED, S.FORCED_OPEN, 0.0), (S.FORCED_OPEN, S.DISABLED, 1000.0), (S.DISABLED, S.CLOSED, 1000.0),
    ]
    assert rec.kinds().count("reset") == 2


@pytest.mark.parametrize(
    ("setup", "illegal"),
    [
        ([], "transition_to_half_open"),
        ([], "transition_to_closed"),
        (["transition_to_open"], "transition_to_open"),
        (["disable"], "transition_to_open"),
        (["disable"], "transition_to_half_open"),
        (["force_open"], "transition_to_open"),
        (["force_open"], "force_open"),
        (["disable"], "disable"),
    ],
)
async def test_illegal_transitions_raise(setup: list[str], illegal: str) -> None:
    breaker = rate_breaker()
    for step in setup:
        getattr(breaker, step)()
    before = breaker.state
    with pytest.raises(IllegalStateTransition):
        getattr(breaker, illegal)()
    assert state(breaker) is before


@pytest.mark.parametrize("form", ["call", "async_with"])
async def test_half_open_permits_never_exceeded(autojump_clock: trio.testing.MockClock, form: str) -> None:
    breaker = rate_breaker(permitted_calls_in_half_open=3)
    breaker.transition_to_open()
    await trio.sleep(10.0)
    in_flight = max_in_flight = ran = rejected = 0

    async def probe() -> None:
        nonlocal in_flight, max_in_flight, ran
        in_flight += 1
        ran += 1
        max_in_flight = max(max_in_flight, in_flight)
        await trio.sleep(1.0)
        in_flight -= 1

    async def caller() -> None:
        nonlocal rejected
        try:
            if form == "call":
                await breaker.call(probe)
            else:
                async with breaker:
                    await probe()
        except CircuitOpenError:
            rejected += 1

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(caller)
    assert (ran, rejected, max_in_flight) == (3, 47, 3)
    assert state(breaker) is S.CLOSED
    assert trio.current_time() == 11.0


async def test_slow_calls_trip_the_breaker(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(slow_call_duration=2.0, slow_call_rate_threshold=50.0, minimum_number_of_calls=2)
    assert await breaker.call(ok, 1.0) == "ok"
    assert await breaker.call(ok, 2.0) == "ok"  # >= slow_call_duration: slow, although successful
    assert state(breaker) is S.OPEN
    metrics = breaker.metrics()
    assert metrics["failed_calls"] == 0
    assert breaker.core.openings == 1


async def test_time_based_window_evicts_old_buckets(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(sliding_window_type=WindowType.TIME_BASED, sliding_window_size=10,
                           minimum_number_of_calls=3)
    await trio.sleep(0.5)
    await fail(breaker)  # bucket 0
    await trio.sleep(5.0)
    await fail(breaker)  # bucket 5
    await trio.sleep(5.0)
    await breaker.call(ok)  # t=10.5: bucket 0 left the window
    assert breaker.metrics()["buffered_calls"] == 2
    await trio.sleep(0.5)
    await breaker.call(ok)  # 1 failure in 3 calls
    assert state(breaker) is S.CLOSED
    await trio.sleep(1.0)
    await fail(breaker)  # 2 of 4 at t=12
    assert state(breaker) is S.OPEN
    assert breaker.metrics()["time_in_state"] == 0.0


async def test_call_timeout_counts_as_failure(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(call_timeout=2.0, minimum_number_of_calls=3, failure_rate_threshold=30.0)
    assert await breaker.call(ok, 1.5) == "ok"  # within the timeout
    async with breaker:
        await trio.sleep(1.0)
    assert state(breaker) is S.CLOSED
    with pytest.raises(trio.TooSlowError):
        await breaker.call(ok, 5.0)
    assert trio.current_time() == 4.5
    assert state(breaker) is S.OPEN


async def test_cancelled_call_is_not_counted_and_releases_probe(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(minimum_number_of_calls=1, permitted_calls_in_half_open=1)
    rec = recorded(breaker)
    with trio.move_on_after(1.0) as scope:
        await breaker.call(ok, 5.0)
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert breaker.metrics()["buffered_calls"] == 0
    assert state(breaker) is S.CLOSED
    breaker.transition_to_open()
    await trio.sleep(10.0)
    with trio.move_on_after(1.0):
        await breaker.call(ok, 5.0)  # the only probe, cancelled: its permit comes back
    assert await breaker.call(ok) == "ok"
    assert state(breaker) is S.CLOSED
    assert "error" not in rec.kinds()


async def test_ignored_errors_and_custom_predicates(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(minimum_number_of_calls=1)
    rec = recorded(breaker)

    async def invalid() -> None:
        raise ValidationError("bad field", field="x")

    with pytest.raises(ValidationError):
        await breaker.call(invalid)
    assert breaker.metrics()["buffered_calls"] == 0
    assert rec.kinds() == ["ignored_error"]
    lenient = rate_breaker(minimum_number_of_calls=1, record=lambda exc: not isinstance(exc, KeyError))

    async def key_error() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        await lenient.call(key_error)
    assert state(lenient) is S.CLOSED  # not recorded: counts as success
    assert lenient.metrics()["successful_calls"] == 1


async def test_decorator_context_manager_and_listener_failure(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(minimum_number_of_calls=2)

    def bad_listener(_event: object) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad_listener)

    @breaker
    async def double(x: int) -> int:
        await trio.sleep(1.0)
        return 2 * x

    assert await double(21) == 42
    with pytest.raises(ProviderError):
        async with breaker:
            raise ProviderError()
    assert state(breaker) is S.OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("body must not run")  # pragma: no cover
    metrics = breaker.metrics()
    assert metrics["listener_errors"] == 4  # success, error, transition, not_permitted
    json.dumps(metrics)
    assert set(metrics) >= {
        "state", "failure_rate", "slow_call_rate", "buffered_calls", "failed_calls", "slow_calls",
        "not_permitted_calls", "time_in_state",
    }


async def test_seed_spelling_consecutive_failures(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=30.0)
    await fail(breaker, 2)
    await breaker.call(ok)  # a success resets the streak
    await fail(breaker, 2)
    assert state(breaker) is S.CLOSED
    await fail(breaker)
    assert state(breaker) is S.OPEN
    await trio.sleep(30.0)
    assert state(breaker) is S.HALF_OPEN
    await fail(breaker)  # the single probe fails
    assert state(breaker) is S.OPEN
    await trio.sleep(30.0)
    await breaker.call(ok)
    assert state(breaker) is S.CLOSED


async def test_outer_cancel_with_call_timeout_is_not_a_failure(autojump_clock: trio.testing.MockClock) -> None:
    breaker = rate_breaker(call_timeout=5.0, minimum_number_of_calls=1)
    with trio.move_on_after(1.0) as scope:
        await breaker.call(ok, 3.0)
    assert scope.cancelled_caught
    assert breaker.metrics()["buffered_calls"] == 0
    assert state(breaker) is S.CLOSED
