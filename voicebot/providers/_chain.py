"""One chain of providers of one kind: deadline, retries, a breaker per provider, fallback, streamed replies.

Semantics (the README "AI providers" section repeats them for users):

- Providers are tried in chain order. Each gets its own deadline (``timeout``: STT whole call, LLM first
  token, TTS first audio), retries included: a retryable failure is retried with jittered backoff while the
  deadline allows (``retry_after`` honoured; a wait that would cross the deadline is not started).
- Each provider has a :class:`~voicebot.resilience.CircuitBreaker` (consecutive-failure mode, shared by every
  bot of the process through a :class:`~voicebot.resilience.BreakerRegistry`). An open breaker is skipped at
  once (outcome ``circuit_open``, no waiting); after the recovery timeout its half-open probe is the next real
  call, so a healthy primary is back in the chain after one successful call.
- Fallback happens only *before* the first piece (token / audio chunk / transcript). Once a provider has
  produced something the reply is committed to it: a failure mid-stream (an error, or no next piece within
  twice ``timeout``) ends the reply with what was produced (:attr:`Reply.error` tells), counts as that provider's
  failure, and is never replayed from another provider (the user already heard the beginning).
- When every provider failed, :class:`~voicebot.errors.ProviderError` ``provider_failed`` is raised (cause: the
  last failure). Cancellation (barge-in, bot stopping) is never counted as a provider failure.
- The fault point ``provider.<kind>`` (ctx ``provider=<name>``) is hit before every attempt.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Generic, TypeVar

import trio

from voicebot import (
    faults,
    metrics,  # its prometheus_client part loads on the first counted request
)
from voicebot.errors import ProviderError, classify, split_passthrough
from voicebot.resilience import (
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    Outcome,
    Permit,
    RetryStrategy,
)

from ._api import ProviderKind
from ._stats import ProviderStats

__all__ = ["ProviderChain", "Reply"]

log = logging.getLogger("voicebot.providers")

T = TypeVar("T")
Opener = Callable[[Any], AbstractAsyncContextManager[AsyncIterator[T]]]

_CLEANUP_SECONDS = 2.0


def _worth_retrying(exc: Exception) -> bool:
    """Retry classified-retryable failures, but never an open breaker (the chain moves on instead)."""
    if isinstance(exc, CircuitOpenError):
        return False
    return classify(exc).error.retryable


async def _close(stack: AsyncExitStack, what: str) -> None:
    """Release a provider's resources: shielded, bounded, never raising (cleanup must happen, not hang)."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLEANUP_SECONDS):
        try:
            await stack.aclose()
        except Exception as exc:
            log.warning("closing %s failed: %r", what, exc)


class Reply(Generic[T]):
    """The pieces of one streamed provider answer (``async for piece in reply``).

    ``provider`` answered; ``fallbacks`` providers before it failed or were skipped; ``first_latency`` is the
    seconds from the call to the first piece (including failed providers before it); ``error`` is set when the
    stream broke after its first piece (the iteration then simply ends); ``sample_rate`` is the TTS provider's
    rate (0 for other kinds).
    """

    def __init__(self, provider: str, iterator: AsyncIterator[T], first: list[T], *, idle_timeout: float,
                 fallbacks: int, first_latency: float, sample_rate: int) -> None:
        """Made by :meth:`ProviderChain.open`."""
        self.provider = provider
        self.fallbacks = fallbacks
        self.first_latency = first_latency
        self.sample_rate = sample_rate
        self.error: BaseException | None = None
        self._iterator = iterator
        self._pending = first
        self._idle_timeout = idle_timeout
        self._finished = not first

    def __aiter__(self) -> Reply[T]:
        """Itself."""
        return self

    async def __anext__(self) -> T:
        """The next piece; ends early (recording :attr:`error`) when the provider fails or stalls mid-stream."""
        if self._pending:
            return self._pending.pop()
        if self._finished:
            raise StopAsyncIteration
        try:
            with trio.move_on_after(self._idle_timeout) as scope:
                return await self._iterator.__anext__()
        except StopAsyncIteration:
            self._finished = True
            raise
        except Exception as exc:
            self._finished = True
            self.error = exc
            log.warning("provider %s failed mid-stream: %s", self.provider, classify(exc).error)
            raise StopAsyncIteration from None
        assert scope.cancelled_caught
        self._finished = True
        self.error = trio.TooSlowError(f"provider {self.provider}: no data for {self._idle_timeout}s mid-stream")
        log.warning("%s", self.error)
        raise StopAsyncIteration


class ProviderChain:
    """Providers of one kind in fallback order, sharing deadline/retry policy (see the module docs)."""

    def __init__(self, kind: ProviderKind, members: Sequence[Any], *, timeout: float, breakers: BreakerRegistry,
                 stats: ProviderStats, recovery_timeout: float = 30.0, failure_threshold: int = 3,
                 max_attempts: int = 3, rng: random.Random | None = None) -> None:
        """``members`` are provider instances (their ``name`` is their chain name); at least one."""
        if not members:
            raise ValueError(f"the {kind} chain is empty")
        self.kind = kind
        self.members = tuple(members)
        self.timeout = timeout
        self.stats = stats
        self.max_attempts = max_attempts
        self.rng = rng if rng is not None else random.Random()
        config = BreakerConfig(failure_threshold=failure_threshold, permitted_calls_in_half_open=1,
                               wait_duration_in_open_state=recovery_timeout)
        self.breakers = {member.name: _breaker(breakers, f"provider:{kind}:{member.name}", config)
                         for member in self.members}

    @property
    def names(self) -> tuple[str, ...]:
        """Provider names in chain order."""
        return tuple(member.name for member in self.members)

    @asynccontextmanager
    async def open(self, opener: Opener[T]) -> AsyncGenerator[Reply[T], None]:
        """``async with chain.open(lambda p: p.stream(msgs)) as reply: async for piece in reply: …``.

        Raises :class:`ProviderError` (``provider_failed``) when no provider produced a first piece.
        """
        started_at = trio.current_time()
        last: BaseException | None = None
        for index, member in enumerate(self.members):
            # One scope per provider carries its deadline. The provider's own context manager is entered and
            # exited inside it (never inside a shorter-lived scope: a provider may open a nursery), and the
            # deadline is lifted once the first piece has arrived.
            deadline_at = trio.current_time() + self.timeout
            with trio.CancelScope(deadline=deadline_at) as scope:
                try:
                    permit, stack, iterator, first = await self._start(member, opener, deadline_at)
                except Exception as exc:
                    last = exc
                else:
                    if scope.cancel_called:  # the deadline expired just as the first piece came: too late
                        await self._too_late(member.name, permit, stack)
                        last = trio.TooSlowError(f"{self.kind} provider {member.name}: too slow")
                    else:
                        scope.deadline = math.inf  # never cancels from now on: consumer errors pass through
                        reply: Reply[T] = Reply(member.name, iterator, first, idle_timeout=2 * self.timeout,
                                                fallbacks=index, first_latency=trio.current_time() - started_at,
                                                sample_rate=int(getattr(member, "sample_rate", 0) or 0))
                        async with self._finish(member.name, permit, stack, reply):
                            yield reply
                        return
            if scope.cancelled_caught:
                last = trio.TooSlowError(f"{self.kind} provider {member.name}: no answer within {self.timeout}s")
            if index + 1 < len(self.members):
                self.stats.entry(self.kind, member.name).fallbacks += 1
                log.info("%s provider %s failed (%s): falling back to %s", self.kind, member.name,
                         _describe(last), self.members[index + 1].name)
        self.stats.chain_failed(self.kind)
        error = ProviderError(f"no {self.kind} provider is available", code="provider_failed",
                              context={"kind": self.kind, "chain": list(self.names),
                                       "last_error": _describe(last) if last else None})
        raise error from last

    async def _too_late(self, name: str, permit: Permit, stack: AsyncExitStack) -> None:
        """Release a call whose first piece arrived after the deadline had already fired; count a timeout."""
        await _close(stack, f"{self.kind} provider {name}")
        self.stats.entry(self.kind, name).timeouts += 1
        metrics.count_provider_request(self.kind, name, "timeout")
        self.breakers[name].core.on_result(permit, Outcome.FAILURE, trio.current_time(), trio.TooSlowError())

    @asynccontextmanager
    async def _finish(self, name: str, permit: Permit, stack: AsyncExitStack,
                      reply: Reply[Any]) -> AsyncGenerator[None, None]:
        """Hold the provider call while the consumer reads; then record how the provider did."""
        breaker, entry = self.breakers[name], self.stats.entry(self.kind, name)
        cancelled = False
        try:
            yield
        except BaseException as exc:
            cancelled = split_passthrough(exc)[0] is not None
            raise
        finally:
            await _close(stack, f"{self.kind} provider {name}")
            now = trio.current_time()
            if reply.error is not None:
                entry.midstream_failures += 1
                entry.errors += 1
                breaker.core.on_result(permit, Outcome.FAILURE, now, reply.error)
                metrics.count_provider_request(self.kind, name, "error")
            else:
                entry.ok += 1
                breaker.core.on_result(permit, Outcome.CANCELLED if cancelled else Outcome.SUCCESS, now, None)
                metrics.count_provider_request(self.kind, name, "ok")

    async def _start(self, member: Any, opener: Opener[T],
                     deadline_at: float) -> tuple[Permit, AsyncExitStack, AsyncIterator[T], list[T]]:
        """Open ``member``'s call and read its first piece, retrying retryable failures while the deadline
        (enforced by the caller's scope) allows. Backoff and the retry decision come from
        :class:`~voicebot.resilience.RetryStrategy`; the loop is ours because a provider's context manager must
        not be entered inside a per-attempt cancel scope that closes before it exits."""
        retry = RetryStrategy(self.max_attempts, base_delay=0.05, max_delay=0.5, rng=self.rng,
                              retry_on=_worth_retrying, name=f"provider.{self.kind}.{member.name}")
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(member, opener, deadline_at)
            except Exception as exc:
                if attempt >= retry.max_attempts or not retry.should_retry(exc):
                    raise
                delay = retry.backoff.delay(attempt, retry.rng)
                retry_after = classify(exc).error.retry_after
                if retry_after is not None:
                    delay = max(delay, retry_after)
                if trio.current_time() + delay >= deadline_at:
                    raise  # the wait would cross the deadline: move on now
                await trio.sleep(delay)

    async def _attempt(self, member: Any, opener: Opener[T],
                       deadline_at: float) -> tuple[Permit, AsyncExitStack, AsyncIterator[T], list[T]]:
        name: str = member.name
        breaker, entry = self.breakers[name], self.stats.entry(self.kind, name)
        now = trio.current_time()
        permit = breaker.core.try_acquire(now)
        if permit is None:
            entry.circuit_open += 1
            metrics.count_provider_request(self.kind, name, "circuit_open")
            raise CircuitOpenError(f"{self.kind} provider {name} is unavailable (circuit open)",
                                   retry_after=breaker.core.retry_after(now),
                                   context={"breaker": breaker.name})
        entry.calls += 1
        stack = AsyncExitStack()
        try:
            await faults.point(f"provider.{self.kind}", provider=name)
            iterator = await stack.enter_async_context(opener(member))
            try:
                first = [await iterator.__anext__()]
            except StopAsyncIteration:
                first = []
        except BaseException as exc:
            await _close(stack, f"{self.kind} provider {name}")
            end = trio.current_time()
            if split_passthrough(exc)[0] is not None:
                if end >= deadline_at:  # our own deadline, not the caller's cancellation
                    entry.timeouts += 1
                    metrics.count_provider_request(self.kind, name, "timeout")
                    breaker.core.on_result(permit, Outcome.FAILURE, end, trio.TooSlowError())
                else:
                    breaker.core.on_result(permit, Outcome.CANCELLED, end, None)
            else:
                entry.errors += 1
                metrics.count_provider_request(self.kind, name, "error")
                breaker.core.on_result(permit, breaker.config.outcome_of(exc), end, exc)
                faults.record_error(exc, where=f"provider.{self.kind}", provider=name)
            raise
        entry.latencies.append(trio.current_time() - now)
        return permit, stack, iterator, first


def _breaker(registry: BreakerRegistry, name: str, config: BreakerConfig) -> CircuitBreaker:
    """The shared breaker ``name``; a different policy for the same provider gets its own (tests, odd setups)."""
    try:
        return registry.get(name, config)
    except ValueError:
        variant = (f"{name}@{config.wait_duration_in_open_state:g}s/{config.failure_threshold}")
        return registry.get(variant, config)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    error = classify(exc).error
    return f"{error.code}: {error.context.get('detail') or error.message}"
