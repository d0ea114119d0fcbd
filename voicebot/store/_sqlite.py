"""SQLite implementation of :class:`~voicebot.store.Store`, driven from Trio through worker threads.

Concurrency: one writer connection used under a :class:`trio.Lock` (so exactly one write transaction at
a time, FIFO), plus one reader connection under its own lock for file databases: WAL lets it read the
last committed state while a write is in progress. For ``:memory:`` there is only one connection (each
connection would get its own empty database), so reads share the writer's lock.

Durability (write-before-acknowledge): every write is one ``BEGIN IMMEDIATE … COMMIT`` transaction that
has committed before the coroutine returns. ``synchronous=FULL`` is the default because in WAL mode
``NORMAL`` only fsyncs at checkpoints: a power cut or kernel crash could then lose transactions that were
already committed and acknowledged to clients (a registered name, a lobby), breaking the promise the
acknowledgement makes. ``FULL`` fsyncs the WAL on every commit; the cost (one fsync per write) is
negligible at our write rate (joins, registrations, audit lines), and ``NORMAL`` can still be chosen
explicitly where losing the last moments on power loss is acceptable. ``OFF`` is refused.

Failure model: every sqlite3 (or other) exception is turned into a VoiceBotError by
:func:`voicebot.errors.map_exception` at the chokepoints; ``trio.Cancelled`` passes through untouched
(a write whose thread already runs completes or rolls back before the cancellation is delivered).
Every wait is bounded: lock waits by ``lock_timeout``, SQLite lock waits by ``busy_timeout``, closing
by ``close_timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import trio

from voicebot import faults
from voicebot.errors import PersistenceError, VoiceBotError

from ._api import MAX_AUDIT_PAGE, SQLStore, mapped_error
from ._conn import Synchronous, close_connections, open_connections, transaction
from ._protocol import Guard, Store, direct

__all__ = ["MAX_AUDIT_PAGE", "SQLiteStore", "Synchronous", "open_store"]

_T = TypeVar("_T")
_log = logging.getLogger("voicebot.store")


class SQLiteStore(SQLStore):
    """SQLite-backed :class:`~voicebot.store.Store`. Open with :func:`open_store` or :meth:`open`."""

    def __init__(
        self, writer: sqlite3.Connection, reader: sqlite3.Connection | None, *, path: str,
        now: Callable[[], float], guard: Guard, read_guard: Guard, lock_timeout: float, close_timeout: float,
    ) -> None:
        """Wrap already configured connections; use :meth:`open` instead."""
        self._writer: sqlite3.Connection | None = writer
        self._reader = reader
        self._path = path
        self._now = now
        self._guard = guard
        self._read_guard = read_guard
        self._lock_timeout = lock_timeout
        self._close_timeout = close_timeout
        self._write_lock = trio.Lock()
        self._read_lock = trio.Lock() if reader is not None else self._write_lock
        self._threads = trio.CapacityLimiter(2)
        self._inline = path == ":memory:"
        self._closing = False

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, now: Callable[[], float] = time.time, guard: Guard | None = None,
        read_guard: Guard | None = None, busy_timeout: float = 5.0, synchronous: Synchronous = "FULL",
        lock_timeout: float = 10.0, close_timeout: float = 10.0,
    ) -> SQLiteStore:
        """Open (creating and migrating if needed) the database at ``path`` (``":memory:"`` works).

        ``now`` supplies stored wall-clock timestamps (epoch seconds). ``guard`` wraps every write
        attempt and ``read_guard`` (default: ``guard``) every read, e.g. retry plus circuit breaker.
        Raises :class:`PersistenceError` (``schema_too_new`` for a database from newer code).
        """
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unsupported synchronous mode {synchronous!r}")
        if min(busy_timeout, lock_timeout, close_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        fspath = os.fspath(path)
        try:
            writer, reader = await trio.to_thread.run_sync(open_connections, fspath, busy_timeout, synchronous)
        except VoiceBotError:
            raise
        except Exception as exc:
            raise mapped_error(exc, "open") from exc
        chosen = guard if guard is not None else direct
        return cls(
            writer, reader, path=fspath, now=now, guard=chosen, read_guard=read_guard or chosen,
            lock_timeout=lock_timeout, close_timeout=close_timeout,
        )

    @property
    def path(self) -> str:
        """The database path as given."""
        return self._path

    # -- chokepoints ------------------------------------------------------------------------------------

    async def _call(self, lock: trio.Lock, read: bool, fn: Callable[[sqlite3.Connection], _T], operation: str) -> _T:
        """One attempt: bounded wait for ``lock``, run ``fn`` in a worker thread, map its failures."""
        with trio.move_on_after(self._lock_timeout) as waited:
            await lock.acquire()
        if waited.cancelled_caught:
            raise PersistenceError("storage busy, try again", code="database_busy", retry_after=1.0,
                                   context={"operation": operation, "lock_timeout": self._lock_timeout})
        try:
            conn = self._reader if read and self._reader is not None else self._writer
            if conn is None:
                raise self._closed_error(operation)
            try:
                await faults.point("store.read" if read else "store.write", operation=operation)  # mapped below
                if self._inline:
                    # ':memory:' databases are tiny and fast: run on the event loop (no thread hop), which also
                    # keeps tests on Trio's autojump clock deterministic (a thread wait lets virtual time leap).
                    await trio.lowlevel.checkpoint()
                    return fn(conn)
                return await trio.to_thread.run_sync(fn, conn, limiter=self._threads, thread_name="voicebot-store")
            except VoiceBotError:
                raise
            except Exception as exc:
                raise mapped_error(exc, operation) from exc
        finally:
            lock.release()

    async def _write(self, operation: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """THE write chokepoint: one committed transaction per attempt, under the writer lock and the guard."""
        tx = transaction(fn)

        async def attempt() -> _T:
            return await self._call(self._write_lock, False, tx, operation)

        return await self._guarded(self._guard, attempt, operation)

    async def _read(self, operation: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """The read chokepoint: reader connection (writer for ``:memory:``) under the read guard."""

        async def attempt() -> _T:
            return await self._call(self._read_lock, True, fn, operation)

        return await self._guarded(self._read_guard, attempt, operation)

    # -- closing ----------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the store: shielded from cancellation and bounded by ``close_timeout``.

        New calls fail with ``store_closed`` at once; calls already queued finish first. If a statement
        is still running at the deadline it is interrupted (``sqlite3.Connection.interrupt``); if the
        connections still cannot be taken, they are left to the garbage collector and a warning logged.
        """
        if self._closing:
            return
        self._closing = True
        with trio.CancelScope(shield=True):
            held: list[trio.Lock] = []
            try:
                for lock in dict.fromkeys((self._write_lock, self._read_lock)):
                    if not await self._acquire(lock, self._close_timeout):
                        for conn in (self._writer, self._reader):
                            if conn is not None:
                                conn.interrupt()
                        if not await self._acquire(lock, 1.0):
                            _log.warning("store %s: closing timed out, connections abandoned", self._path)
                            self._writer = self._reader = None
                            return
                    held.append(lock)
                writer, reader = self._writer, self._reader
                self._writer = self._reader = None
                if self._inline:
                    close_connections(writer, reader)
                else:
                    await trio.to_thread.run_sync(close_connections, writer, reader, limiter=self._threads)
            finally:
                for lock in held:
                    lock.release()

    @staticmethod
    async def _acquire(lock: trio.Lock, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            await lock.acquire()
            return True
        return False


@contextlib.asynccontextmanager
async def open_store(
    path: str | os.PathLike[str], *, now: Callable[[], float] = time.time, guard: Guard | None = None,
    read_guard: Guard | None = None, busy_timeout: float = 5.0, synchronous: Synchronous = "FULL",
    lock_timeout: float = 10.0, close_timeout: float = 10.0,
) -> AsyncIterator[SQLiteStore]:
    """``async with open_store(path) as store:`` — open (see :meth:`SQLiteStore.open`), yield, close."""
    store = await SQLiteStore.open(
        path, now=now, guard=guard, read_guard=read_guard, busy_timeout=busy_timeout, synchronous=synchronous,
        lock_timeout=lock_timeout, close_timeout=close_timeout,
    )
    try:
        yield store
    finally:
        await store.aclose()


def _conforms(store: SQLiteStore) -> Store:  # pragma: no cover - static check that SQLiteStore is a Store
    return store
