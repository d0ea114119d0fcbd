"""RetryStrategy: backoff and jitter, retry_after, deadline, cancellation, the three usage forms."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from voicebot.errors import ProviderError, RateLimitError
from voicebot.resilience import Backoff, Jitter, RetryEvent, RetryEventKind, RetryStrategy

from .helpers import Recorder


class Flaky:
    """Fails ``failures`` times (with ``error``), then returns the attempt number; logs call times."""

    def __init__(self, failures: int, error: Exception | None = None, duration: float = 0.0) -> None:
        self.failures = failures
        self.error = error if error is not None else ProviderError("flaky")
        self.duration = duration
        self.calls: list[float] = []

    async def __call__(self) -> int:
        self.calls.append(trio.current_time())
        await trio.sleep(self.duration)
        if len(self.calls) <= self.failures:
            raise self.error
        return len(self.calls)


def delays(rec: Recorder) -> list[float | None]:
    return [e.delay for e in rec.events if isinstance(e, RetryEvent) and e.kind is RetryEventKind.RETRY_SCHEDULED]


def give_up_reason(rec: Recorder) -> str | None:
    reasons = [e.reason for e in rec.events if e.kind is RetryEventKind.GIVE_UP]
    assert len(reasons) <= 1
    return reasons[0] if reasons else None


async def test_exponential_backoff_exact_times(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    retry = RetryStrategy(max_attempts=5, base_delay=1.0, multiplier=2.0, max_delay=3.0, jitter="none",
                          listeners=[rec])
    flaky = Flaky(failures=3)
    assert await retry.call(flaky) == 4
    assert flaky.calls == [0.0, 1.0, 3.0, 6.0]  # waits 1, 2, then 4 capped at 3
    assert [str(e.kind) for e in rec.events] == [
        "attempt", "retry_scheduled", "attempt", "retry_scheduled", "attempt", "retry_scheduled", "attempt",
        "success",
    ]


@pytest.mark.parametrize("jitter", ["full", "equal", 0.25])
async def test_jitter_bounds_and_seed_reproducibility(autojump_clock: trio.testing.MockClock, jitter: Jitter) -> None:
    runs = []
    for seed in (7, 7, 8):
        rec = Recorder()
        retry = RetryStrategy(max_attempts=8, base_delay=0.5, multiplier=2.0, max_delay=10.0, jitter=jitter,
                              rng=random.Random(seed), listeners=[rec])
        start = trio.current_time()
        with pytest.raises(ProviderError):
            await retry.call(Flaky(failures=100))
        got = delays(rec)
        assert len(got) == 7
        assert trio.current_time() - start == pytest.approx(sum(d or 0.0 for d in got))
        for n, delay in enumerate(got, start=1):
            low, high = retry.backoff.bounds(n)
            assert delay is not None
            assert low <= delay <= high
        runs.append(got)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_backoff_bounds_table() -> None:
    assert Backoff(base_delay=1.0, multiplier=3.0, max_delay=20.0, jitter="none").bounds(3) == (9.0, 9.0)
    assert Backoff(base_delay=1.0, multiplier=3.0, max_delay=20.0, jitter="full").bounds(4) == (0.0, 20.0)
    assert Backoff(base_delay=2.0, jitter="equal").bounds(1) == (1.0, 2.0)
    assert Backoff(base_delay=1.0, max_delay=1e9).raw(100_000) == 1e9  # no OverflowError
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter="sometimes")  # type: ignore[arg-type]


async def test_gives_up_with_last_error_and_note(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    retry = RetryStrategy(max_attempts=3, base_delay=1.0, jitter="none", listeners=[rec])
    errors = [ProviderError("one"), ProviderError("two"), ProviderError("three")]

    async def failing() -> None:
        raise errors[len(rec.events) // 2]

    with pytest.raises(ProviderError) as info:
        await retry.call(failing)
    assert info.value is errors[2]
    assert any("gave up after attempt 3 (attempts_exhausted)" in note for note in info.value.__notes__)
    assert give_up_reason(rec) == "attempts_exhausted"
    assert trio.current_time() == 3.0


async def test_non_retryable_is_raised_at_once(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    retry = RetryStrategy(max_attempts=5, listeners=[rec])
    flaky = Flaky(failures=1, error=RuntimeError("bug"))  # classify(): internal_error, not retryable
    with pytest.raises(RuntimeError):
        await retry.call(flaky)
    assert flaky.calls == [0.0]
    assert give_up_reason(rec) == "not_retryable"


async def test_retry_on_types_and_predicate(autojump_clock: trio.testing.MockClock) -> None:
    by_type = RetryStrategy(max_attempts=3, base_delay=1.0, jitter="none", retry_on=(KeyError,))
    assert await by_type.call(Flaky(failures=2, error=KeyError("k"))) == 3
    with pytest.raises(ProviderError):  # retryable per classifier, but not a configured type
        await by_type.call(Flaky(failures=1))
    by_predicate = RetryStrategy(max_attempts=3, jitter="none", retry_on=lambda exc: "again" in str(exc))
    assert await by_predicate.call(Flaky(failures=1, error=ValueError("again"))) == 2


async def test_retry_after_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    retry = RetryStrategy(max_attempts=3, base_delay=1.0, max_delay=2.0, jitter="none")
    flaky = Flaky(failures=1, error=RateLimitError(retry_after=7.0))
    assert await retry.call(flaky) == 2
    assert flaky.calls == [0.0, 7.0]  # max(backoff 1, retry_after 7), even above max_delay


async def test_deadline_stops_before_a_wait_that_would_cross_it(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    retry = RetryStrategy(max_attempts=10, base_delay=1.0, jitter="none", deadline=5.0, listeners=[rec])
    flaky = Flaky(failures=100)
    with pytest.raises(ProviderError) as info:
        await retry.call(flaky)
    assert flaky.calls == [0.0, 1.0, 3.0]  # the next wait (4 s) would end at 7 > 5
    assert trio.current_time() == 3.0
    assert give_up_reason(rec) == "deadline"
    assert any("(deadline)" in note for note in info.value.__notes__)


async def test_success_within_deadline(autojump_clock: trio.testing.MockClock) -> None:
    retry = RetryStrategy(max_attempts=3, base_delay=1.0, jitter="none", deadline=5.0)
    assert await retry.call(Flaky(failures=0, duration=4.0)) == 1
    assert await retry.call(Flaky(failures=1, duration=1.0)) == 2
    async for attempt in retry:
        with attempt:
            await trio.sleep(0.5)
    assert trio.current_time() == 7.5


async def test_deadline_cancels_a_running_attempt(autojump_clock: trio.testing.MockClock) -> None:
    retry = RetryStrategy(max_attempts=10, base_delay=1.0, jitter="none", deadline=5.0)
    flaky = Flaky(failures=1, duration=3.0)  # fails at 3, retries at 4, would finish at 7
    with pytest.raises(trio.TooSlowError) as info:
        await retry.call(flaky)
    assert trio.current_time() == 5.0
    assert isinstance(info.value.__cause__, ProviderError)


async def test_cancelled_during_wait_propagates_immediately(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    retry = RetryStrategy(max_attempts=5, base_delay=10.0, jitter="none", listeners=[rec])
    flaky = Flaky(failures=100)
    with trio.move_on_after(2.5) as scope:
        await retry.call(flaky)
    assert scope.cancelled_caught
    assert trio.current_time() == 2.5
    assert flaky.calls == [0.0]
    assert give_up_reason(rec) is None


async def test_cancelled_inside_attempt_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    retry = RetryStrategy(max_attempts=5, base_delay=1.0, jitter="none")
    flaky = Flaky(failures=0, duration=10.0)
    with trio.move_on_after(4.0):
        await retry.call(flaky)
    assert flaky.calls == [0.0]
    assert trio.current_time() == 4.0


async def test_async_for_form(autojump_clock: trio.testing.MockClock) -> None:
    retry = RetryStrategy(max_attempts=4, base_delay=1.0, jitter="none")
    flaky = Flaky(failures=2)
    numbers = []
    async for attempt in retry:
        with attempt:
            numbers.append(attempt.number)
            result = await flaky()
    assert result == 3
    assert numbers == [1, 2, 3]
    assert trio.current_time() == 3.0

    async def always_failing() -> None:
        async for attempt in retry:
            with attempt:
                await Flaky(failures=10)()

    with pytest.raises(ProviderError):
        await always_failing()


async def test_decorator_form(autojump_clock: trio.testing.MockClock) -> None:
    retry = RetryStrategy(max_attempts=3, base_delay=0.5, jitter="none")
    seen: list[float] = []

    @retry
    async def fetch(key: str) -> str:
        seen.append(trio.current_time())
        if len(seen) < 2:
            raise ProviderError()
        return key.upper()

    assert await fetch("a") == "A"
    assert seen == [0.0, 0.5]


async def test_outer_cancel_with_deadline_propagates(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    retry = RetryStrategy(max_attempts=3, base_delay=1.0, jitter="none", deadline=10.0, listeners=[rec])
    flaky = Flaky(failures=0, duration=5.0)
    with trio.move_on_after(2.0) as scope:
        await retry.call(flaky)
    assert scope.cancelled_caught
    assert trio.current_time() == 2.0
    assert flaky.calls == [0.0]
    assert [str(e.kind) for e in rec.events] == ["attempt"]
