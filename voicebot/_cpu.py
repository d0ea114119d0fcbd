"""CPU-heavy work (password hashing, speech synthesis) in dedicated low-priority threads, never on the event loop.

``trio.to_thread`` keeps the loop free of the work itself, but on a small machine the work's threads still take
the cores from the loop's thread: one Argon2id hash runs 4 threads (parallelism 4), and the loop then gets a fifth
of a core while it lasts (measured with ``scripts/bench_isolation.py``: chat p99 went from ~10 ms to 1.2 s under a
hashing and bot-adding flood). A :class:`CpuPool` runs the work in its own threads at a lower scheduling priority
(``nice`` +10 relative to the process, at most 19, on Linux, per thread; threads the work starts, like Argon2's,
inherit it), so the loop — which only
routes messages — always comes first and the heavy work uses what is left. Pools are per purpose and process-wide;
their size bounds the concurrency (callers add their own queue limits).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["LOW_PRIORITY_NICE", "CpuPool"]

T = TypeVar("T")

#: How much lower than the creating thread's priority pool threads run (``nice`` increment; 19 is the floor).
LOW_PRIORITY_NICE = 10


def _lower_priority() -> None:
    # Relative to the thread's inherited value: setting an absolute 10 would *raise* the priority of a process
    # started under ``nice -n 15`` above its own event loop.
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: unchanged priority
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + LOW_PRIORITY_NICE))


class CpuPool:
    """``await pool.run(fn, *args)`` runs ``fn`` in one of ``workers`` low-priority threads named ``name-N``.

    Like ``trio.to_thread.run_sync`` (not abandoning on cancel): a cancelled caller still waits for its call to
    finish, since the work cannot be interrupted and must not pile up unseen; every use is bounded work.
    """

    def __init__(self, name: str, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.name = name
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                # Loaded with the first pool used (the first password hash), not by every idle server.
                from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name,
                                                    initializer=_lower_priority)
            return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the pool and return its result (or raise its exception)."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(_future: Future[T]) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        future = self._pool().submit(fn, *args)
        future.add_done_callback(wake)
        with trio.CancelScope(shield=True):
            await done.wait()
        return future.result()
