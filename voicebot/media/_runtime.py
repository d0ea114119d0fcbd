"""The process's asyncio loop for aiortc, running inside Trio (trio-asyncio), and how Trio calls into it.

Design: one loop per process, owned by the caller's nursery; a loop exception handler that
classifies and counts instead of tearing the loop (and every session) down; aiortc coroutines run as asyncio
tasks that the Trio side *waits for* with a deadline. A Trio deadline or cancellation never waits for the
asyncio task to acknowledge the cancel (under trio-asyncio a ``Task.cancel()`` can be lost while the task sits
in ``run_in_executor``), so a Trio wait is always bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio
import trio_asyncio

from voicebot.errors import VoiceBotError, WebRTCError, classify, split_passthrough

__all__ = ["MediaRuntime", "MediaStats", "current_media_runtime", "media_runtime", "open_media_loop"]

logger = logging.getLogger("voicebot.media")

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[MediaRuntime | None] = contextvars.ContextVar("voicebot_media_runtime", default=None)


@attrs.define
class MediaStats:
    """Process-wide media counters (read them, do not write)."""

    loop_errors: int = 0
    """Errors that reached the asyncio loop's exception handler (classified, logged, survived)."""
    loop_errors_by_code: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """``loop_errors`` broken down by ``VoiceBotError.code``."""
    recent_errors: collections.deque[VoiceBotError] = attrs.field(factory=lambda: collections.deque(maxlen=32))
    """The last 32 classified errors from the loop and from peer connections."""
    close_timeouts: int = 0
    """Peer-connection closes that did not finish within their deadline (the close keeps running)."""
    callback_errors: int = 0
    """Exceptions caught inside our own aiortc event callbacks (they must never raise)."""
    peer_connections_opened: int = 0
    """Peer connections created."""
    peer_connections_closed: int = 0
    """Peer connections whose close finished."""

    def record(self, error: VoiceBotError) -> None:
        """Remember a classified error in ``recent_errors``."""
        self.recent_errors.append(error)


class MediaRuntime:
    """Handle on the running trio-asyncio loop; obtained from :func:`open_media_loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        """The trio-asyncio event loop (aiortc objects live here)."""
        self.stats = MediaStats()
        """Process-wide counters."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        """True once the owning context has exited."""

    # -- errors -------------------------------------------------------------------------------------------

    def handle_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio exception handler: classify, count and log; never tear the loop down.

        ``Cancelled``/``KeyboardInterrupt``/``SystemExit`` are handed to trio-asyncio's default handler, which
        re-raises them into the loop's nursery: control flow is never swallowed.
        """
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            passthrough, failure = split_passthrough(exc)
            if passthrough is not None:
                loop.default_exception_handler(context)
                return
            assert failure is not None
            error = classify(failure).error
        else:
            error = WebRTCError("media loop error", code="loop_error")
            error.context["detail"] = str(context.get("message", ""))[:500]
        self.stats.loop_errors += 1
        self.stats.loop_errors_by_code[error.code] += 1
        self.stats.record(error)
        logger.warning(
            "media loop error %s: %s",
            error.code,
            context.get("message", ""),
            exc_info=exc if isinstance(exc, BaseException) else None,
        )

    def record_error(self, exc: BaseException, **context: Any) -> VoiceBotError:
        """Classify a (non-control-flow) exception raised inside the bridge, count it and return it."""
        error = classify(exc).error
        error.context.update(context)
        self.stats.record(error)
        logger.warning("media error %s (%s): %r", error.code, context, exc)
        return error

    # -- running asyncio code -----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` as an asyncio task owned by this runtime (cancelled when the runtime exits).

        Its exception, if any, is retrieved (no "never retrieved" warnings); callers that care wait for it.
        """
        task: asyncio.Task[T] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # mark retrieved; the waiter (if any) re-reads it

    async def wait_task(self, task: asyncio.Task[T], *, limit: float, cancel_on_abandon: bool = True) -> T:
        """Wait (from Trio) for ``task`` with a deadline; return its result or raise its exception.

        After ``limit`` seconds raises ``trio.TooSlowError``; if the Trio side is cancelled or times out and
        ``cancel_on_abandon`` is true, the asyncio task is asked to cancel, but we do not wait for it.
        """
        if not task.done():
            finished = trio.Event()
            task.add_done_callback(lambda _t: finished.set())
            try:
                with trio.fail_after(limit):
                    await finished.wait()
            except BaseException:
                if cancel_on_abandon and not task.done():
                    task.cancel()
                raise
        if task.cancelled():
            raise WebRTCError("media operation cancelled", code="operation_cancelled")
        return task.result()

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, limit: float, cancel_on_abandon: bool = True) -> T:
        """Run the asyncio coroutine function ``fn(*args)`` on the loop and wait for it from Trio, bounded."""

        async def call() -> T:
            return await fn(*args)

        return await self.wait_task(self.spawn(call()), limit=limit, cancel_on_abandon=cancel_on_abandon)

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def current_media_runtime() -> MediaRuntime:
    """The runtime opened by the innermost enclosing :func:`open_media_loop` (raises if there is none)."""
    runtime = _CURRENT.get()
    if runtime is None or runtime.closed:
        raise WebRTCError("media runtime is not running", code="media_runtime_missing")
    return runtime


@asynccontextmanager
async def open_media_loop() -> AsyncIterator[MediaRuntime]:
    """Open the process's asyncio loop for aiortc inside the caller's nursery.

    Use one per process (the server or a bot worker owns it)::

        async with open_media_loop() as runtime:
            async with PeerConnection(config) as pc:
                ...

    On exit every asyncio task started through the runtime is cancelled and trio-asyncio shuts the loop
    down. Close peer connections before leaving (``PeerConnection``'s ``async with`` does).
    """
    async with trio_asyncio.open_loop() as loop:
        runtime = MediaRuntime(loop)
        loop.set_exception_handler(runtime.handle_loop_exception)
        token = _CURRENT.set(runtime)
        try:
            yield runtime
        finally:
            _CURRENT.reset(token)
            runtime.closed = True
            runtime._cancel_all()


media_runtime = open_media_loop
"""Alias of :func:`open_media_loop`."""
