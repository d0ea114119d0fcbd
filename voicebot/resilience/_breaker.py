"""The Trio circuit breaker: the sans-IO core on Trio's clock, with per-call timeouts via cancel scopes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import trio

from ._config import BreakerConfig, Outcome, with_options
from ._core import BreakerCore, BreakerEvent, CircuitState, Permit
from ._errors import CircuitOpenError
from ._events import ListenerSet

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")


class _Guard:
    """One admitted call: holds the permit and the timeout scope between ``__aenter__`` and ``__aexit__``."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        """Bind to ``breaker``; nothing is acquired until ``__aenter__``."""
        self._breaker = breaker
        self._permit: Permit | None = None
        self._scope: trio.CancelScope | None = None

    async def __aenter__(self) -> None:
        """Acquire a permit (or raise :class:`CircuitOpenError`) and start the call timeout."""
        await trio.lowlevel.checkpoint_if_cancelled()
        breaker = self._breaker
        now = trio.current_time()
        permit = breaker.core.try_acquire(now)
        if permit is None:
            retry_after = breaker.core.retry_after(now)
            state = breaker.core.state_at(now)
            raise CircuitOpenError(
                f"service temporarily unavailable, retry in {retry_after:.3g}s", retry_after=retry_after,
                context={"breaker": breaker.name, "state": str(state)},
            )
        self._permit = permit
        timeout = breaker.config.call_timeout
        if timeout is not None:
            self._scope = trio.CancelScope(deadline=now + timeout)
            self._scope.__enter__()

    async def __aexit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        """Close the timeout scope and record the outcome; never swallows (a timeout becomes TooSlowError)."""
        assert self._permit is not None
        core, permit = self._breaker.core, self._permit
        if self._scope is not None:
            try:
                self._scope.__exit__(etype, exc, tb)
            except BaseException as replaced:  # the scope rewrote a group containing its Cancelled
                core.on_result(permit, self._breaker.config.outcome_of(replaced), trio.current_time(), replaced)
                raise
            if self._scope.cancelled_caught:
                timeout_exc = trio.TooSlowError(
                    f"breaker {self._breaker.name!r}: call timed out after {self._breaker.config.call_timeout}s"
                )
                core.on_result(permit, Outcome.FAILURE, trio.current_time(), timeout_exc)
                raise timeout_exc
        core.on_result(permit, self._breaker.config.outcome_of(exc), trio.current_time(), exc)


class CircuitBreaker:
    """A resilience4j-style circuit breaker for Trio.

    ``CircuitBreaker("db", failure_rate_threshold=50, minimum_number_of_calls=10)`` takes any
    :class:`BreakerConfig` field as a keyword (or ``config=``); the seed's spelling
    ``CircuitBreaker(failure_threshold=5, recovery_timeout=30.0)`` selects consecutive-failure mode.
    Use it as ``await breaker.call(fn, *args)``, as a decorator on async functions, or as ``async with breaker:``.
    A rejected call raises :class:`CircuitOpenError` (retryable, ``retry_after`` = time until HALF_OPEN).
    """

    def __init__(
        self, name: str = "breaker", *, config: BreakerConfig | None = None,
        listeners: Iterable[Callable[[BreakerEvent], object]] = (), **options: Any,
    ) -> None:
        """Create a CLOSED breaker; ``options`` override ``config`` fields (``recovery_timeout`` is an alias)."""
        self.name = name
        self.listeners: ListenerSet[BreakerEvent] = ListenerSet(listeners)
        self.core = BreakerCore(
            with_options(config or BreakerConfig(), options), name=name, emit=self.listeners.emit, now=_now_or_none(),
        )
        self._task_guards: dict[trio.lowlevel.Task, list[_Guard]] = {}

    @property
    def config(self) -> BreakerConfig:
        """The (immutable) configuration."""
        return self.core.config

    @property
    def state(self) -> CircuitState:
        """The current state on Trio's clock (OPEN reports HALF_OPEN as soon as the wait has elapsed)."""
        return self.core.state_at(trio.current_time())

    def add_listener(self, listener: Callable[[BreakerEvent], object]) -> None:
        """Register a sync listener for every :class:`BreakerEvent` (exceptions it raises are logged only)."""
        self.listeners.add(listener)

    def remove_listener(self, listener: Callable[[BreakerEvent], object]) -> None:
        """Unregister a listener."""
        self.listeners.remove(listener)

    # -- calls ---------------------------------------------------------------------------------------------

    def guard(self) -> _Guard:
        """A fresh async context manager admitting one call (what ``async with breaker:`` uses)."""
        return _Guard(self)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``await fn(*args, **kwargs)`` through the breaker."""
        async with _Guard(self):
            return await fn(*args, **kwargs)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate an async function so every call goes through the breaker."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    async def __aenter__(self) -> CircuitBreaker:
        """Admit one call for the body of ``async with breaker:`` (re-entrant per task, safe across tasks)."""
        guard = _Guard(self)
        await guard.__aenter__()
        self._task_guards.setdefault(trio.lowlevel.current_task(), []).append(guard)
        return self

    async def __aexit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        """Record the body's outcome; never swallows an exception."""
        task = trio.lowlevel.current_task()
        stack = self._task_guards[task]
        guard = stack.pop()
        if not stack:
            del self._task_guards[task]
        await guard.__aexit__(etype, exc, tb)

    # -- manual control ------------------------------------------------------------------------------------

    def transition_to_open(self) -> None:
        """Open now (illegal from DISABLED)."""
        self.core.transition(CircuitState.OPEN, trio.current_time())

    def transition_to_half_open(self) -> None:
        """Start probing now (legal from OPEN or FORCED_OPEN)."""
        self.core.transition(CircuitState.HALF_OPEN, trio.current_time())

    def transition_to_closed(self) -> None:
        """Close now, discarding the window (illegal when already CLOSED: use :meth:`reset`)."""
        self.core.transition(CircuitState.CLOSED, trio.current_time())

    def force_open(self) -> None:
        """Reject every call until another manual transition (FORCED_OPEN)."""
        self.core.transition(CircuitState.FORCED_OPEN, trio.current_time())

    def disable(self) -> None:
        """Admit every call and stop evaluating (DISABLED)."""
        self.core.transition(CircuitState.DISABLED, trio.current_time())

    def reset(self) -> None:
        """Back to a fresh CLOSED state from any state."""
        self.core.reset(trio.current_time())

    # -- introspection -------------------------------------------------------------------------------------

    def metrics(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready metrics: state, rates, buffered/failed/slow calls, not-permitted count, time in state."""
        metrics = self.core.metrics(trio.current_time() if now is None else now)
        metrics["listener_errors"] = self.listeners.errors
        return metrics

    snapshot = metrics

    def __repr__(self) -> str:
        """Name and last known state (does not read the clock)."""
        return f"<CircuitBreaker {self.name!r} {self.core.last_state}>"


def _now_or_none() -> float | None:
    """Trio's time, or None outside a Trio run (the core then anchors its clock on first use)."""
    try:
        return trio.current_time()
    except RuntimeError:
        return None
