"""Retry with exponential backoff, jitter, ``retry_after`` and a whole-operation deadline, on Trio's clock."""

from __future__ import annotations

import enum
import functools
import math
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import attrs
import trio

from voicebot.errors import classify, split_passthrough

from ._backoff import Backoff, Jitter
from ._events import ListenerSet

__all__ = ["Attempt", "RetryEvent", "RetryEventKind", "RetryStrategy"]

P = ParamSpec("P")
T = TypeVar("T")

RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]


class RetryEventKind(enum.StrEnum):
    """What a :class:`RetryEvent` reports."""

    ATTEMPT = "attempt"
    RETRY_SCHEDULED = "retry_scheduled"
    SUCCESS = "success"
    GIVE_UP = "give_up"


@attrs.frozen(kw_only=True)
class RetryEvent:
    """One retry event, delivered to listeners."""

    kind: RetryEventKind
    strategy: str
    attempt: int
    at: float
    delay: float | None = None
    """For RETRY_SCHEDULED: the wait before the next attempt."""
    exception: BaseException | None = None
    reason: str | None = None
    """For GIVE_UP: ``not_retryable``, ``attempts_exhausted`` or ``deadline``."""


class RetryStrategy:
    """Retry policy usable as a decorator, as ``await retry.call(fn, ...)`` or as ``async for attempt in retry``.

    Only failures that ``retry_on`` accepts are retried; by default that is ``classify(exc).error.retryable``.
    The wait before retry n is ``max(backoff(n), error.retry_after)`` (``retry_after`` is honoured even above
    ``max_delay``). ``trio.Cancelled`` / KeyboardInterrupt / SystemExit are never retried or swallowed.

    Giving up re-raises the **last error itself** (with a note saying why), so ``classify()`` and the error
    handler see the real code, category and ``retry_after``. The ``deadline`` (seconds for the whole
    operation, waits included) is enforced two ways: a wait that would end at or past it is not started (the
    last error is re-raised), and an attempt still running at the deadline is cancelled and
    ``trio.TooSlowError`` is raised (chained from the previous attempt's error, if any).
    """

    def __init__(
        self, max_attempts: int = 3, *, base_delay: float = 1.0, max_delay: float = 30.0, multiplier: float = 2.0,
        jitter: Jitter = "equal", deadline: float | None = None, rng: random.Random | None = None,
        retry_on: RetryOn | None = None, name: str = "retry",
        listeners: Iterable[Callable[[RetryEvent], object]] = (),
    ) -> None:
        """Configure the policy; ``rng`` should be injected (seeded) wherever reproducibility matters."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if deadline is not None and not deadline > 0:
            raise ValueError("deadline must be > 0")
        self.max_attempts = max_attempts
        self.backoff = Backoff(base_delay=base_delay, max_delay=max_delay, multiplier=multiplier, jitter=jitter)
        self.deadline = deadline
        self.rng = rng if rng is not None else random.Random()
        self.retry_on = retry_on
        self.name = name
        self.listeners: ListenerSet[RetryEvent] = ListenerSet(listeners)

    def should_retry(self, exc: Exception) -> bool:
        """Whether ``exc`` is worth another attempt under ``retry_on`` (default: the classifier's verdict)."""
        retry_on = self.retry_on
        if retry_on is None:
            return classify(exc).error.retryable
        if isinstance(retry_on, type | tuple):
            if isinstance(exc, BaseExceptionGroup):
                return exc.split(retry_on)[1] is None
            return isinstance(exc, retry_on)
        return retry_on(exc)

    def add_listener(self, listener: Callable[[RetryEvent], object]) -> None:
        """Register a sync listener for every :class:`RetryEvent`."""
        self.listeners.add(listener)

    def __aiter__(self) -> _RetryRun:
        """Start one retried operation: ``async for attempt in retry: with attempt: ...``."""
        return _RetryRun(self)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await fn(*args, **kwargs)`` with retries; returns its result or raises the final error."""
        async for attempt in self:
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable: the last attempt either returns or raises")  # pragma: no cover

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate an async function so every call is retried by this strategy."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper


class _RetryRun:
    """The async iterator of one retried operation."""

    def __init__(self, strategy: RetryStrategy) -> None:
        """A fresh operation: no attempt made yet, deadline armed at the first ``__anext__``."""
        self.strategy = strategy
        self.number = 0
        self.deadline_at = math.inf
        self.pending_delay: float | None = None
        self.last_error: BaseException | None = None
        self.finished = False

    def __aiter__(self) -> _RetryRun:
        """Itself."""
        return self

    async def __anext__(self) -> Attempt:
        """The next attempt, after the scheduled wait; stops after a success or a give-up."""
        if self.number == 0:
            if self.strategy.deadline is not None:
                self.deadline_at = trio.current_time() + self.strategy.deadline
        elif self.pending_delay is None or self.finished:
            raise StopAsyncIteration  # the previous attempt succeeded, gave up, or was never entered
        else:
            delay, self.pending_delay = self.pending_delay, None
            await trio.sleep(delay)
        self.number += 1
        return Attempt(self, self.number)

    def emit(self, kind: RetryEventKind, number: int, **fields: Any) -> None:
        """Send one event to the strategy's listeners."""
        self.strategy.listeners.emit(RetryEvent(
            kind=kind, strategy=self.strategy.name, attempt=number, at=trio.current_time(), **fields,
        ))


class Attempt:
    """One attempt; ``with attempt:`` swallows a retryable failure (the loop then waits and retries)."""

    def __init__(self, run: _RetryRun, number: int) -> None:
        """Created by the retry loop; ``number`` is 1-based."""
        self._run = run
        self.number = number
        self._scope: trio.CancelScope | None = None

    def __enter__(self) -> Attempt:
        """Start the attempt under the operation deadline."""
        self._run.emit(RetryEventKind.ATTEMPT, self.number)
        if self._run.deadline_at != math.inf:
            self._scope = trio.CancelScope(deadline=self._run.deadline_at)
            self._scope.__enter__()
        return self

    def __exit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> bool:
        """Decide: success ends the loop, a retryable failure is swallowed and scheduled, anything else raises."""
        run, strategy = self._run, self._run.strategy
        if self._scope is not None:
            self._scope.__exit__(etype, exc, tb)
        if self._scope is not None and self._scope.cancelled_caught:
            run.finished = True
            self._give_up("deadline", run.last_error)
            raise trio.TooSlowError(
                f"retry {strategy.name!r}: deadline of {strategy.deadline}s expired during attempt {self.number}"
            ) from run.last_error
        if exc is None:
            run.finished = True
            run.emit(RetryEventKind.SUCCESS, self.number)
            return False
        passthrough, _ = split_passthrough(exc)
        if passthrough is not None or not isinstance(exc, Exception):
            run.finished = True
            return False
        run.last_error = exc
        if not strategy.should_retry(exc):
            return self._stop(exc, "not_retryable")
        if self.number >= strategy.max_attempts:
            return self._stop(exc, "attempts_exhausted")
        delay = strategy.backoff.delay(self.number, strategy.rng)
        retry_after = classify(exc).error.retry_after
        if retry_after is not None:
            delay = max(delay, retry_after)
        if trio.current_time() + delay >= run.deadline_at:
            return self._stop(exc, "deadline", delay)
        run.pending_delay = delay
        run.emit(RetryEventKind.RETRY_SCHEDULED, self.number, delay=delay, exception=exc)
        return True

    def _stop(self, exc: Exception, reason: str, delay: float | None = None) -> bool:
        self._run.finished = True
        self._give_up(reason, exc, delay)
        exc.add_note(f"retry {self._run.strategy.name!r}: gave up after attempt {self.number} ({reason})")
        return False

    def _give_up(self, reason: str, exc: BaseException | None, delay: float | None = None) -> None:
        self._run.emit(RetryEventKind.GIVE_UP, self.number, reason=reason, exception=exc, delay=delay)
