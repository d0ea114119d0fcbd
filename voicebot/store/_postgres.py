"""PostgreSQL implementation of :class:`~voicebot.store.Store` (psycopg 3, sync API in Trio worker threads).

Why threads: psycopg's async API runs on asyncio only (``AsyncConnection.connect`` under ``trio.run`` fails
with "no running event loop"), and the Trio-native drivers (triopg on asyncpg, pgtrio) are unmaintained.
The store's operations are few and short (joins, registrations, audit rows), so a small
``psycopg_pool.ConnectionPool`` driven through ``trio.to_thread.run_sync`` costs one thread hop per call
and keeps a well-kept driver, its pool (reconnection with backoff, health check on checkout) and libpq.

Semantics are those of the SQLite store (same statements, :mod:`._sql`; same validation, :mod:`._api`):
every write is one transaction that has committed before the coroutine returns (write-before-acknowledge),
through one chokepoint wrapped by the guard, with fault points ``store.write``/``store.read``; migrations
are versioned (:mod:`._pg_schema`). PostgreSQL serialises concurrent writers itself (MVCC and row locks;
``INSERT … ON CONFLICT DO NOTHING`` makes a lost registration race ``name_taken``, not an error), so up to
``pool_size`` operations run at once.

Deadlines: connecting (``connect_timeout``), waiting for a pooled connection (``acquire_timeout``), each
statement (server-side ``statement_timeout``), a dead peer (``tcp_user_timeout`` and TCP keepalives) and
closing (``close_timeout``). Every failure leaves as a VoiceBotError mapped by
:func:`voicebot.errors.map_exception`; a cancelled call whose thread already runs completes or rolls back
before ``Cancelled`` is delivered. The password in the URL never appears in logs, errors or statistics
(:func:`redact_url`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from voicebot import faults
from voicebot.errors import VoiceBotError

from . import _sql
from ._api import SQLStore, mapped_error
from ._pg_schema import migrate
from ._protocol import Guard, Store, direct
from ._url import redact_url

__all__ = ["PostgresStore"]

_T = TypeVar("_T")
_log = logging.getLogger("voicebot.store")


class _Adapter:
    """Presents a psycopg connection as the ``?``-placeholder :class:`._sql.Connection` the shared SQL uses."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        # The shared statements contain no literal "?" or "%"; bytes because psycopg types queries as literals.
        return self._conn.execute(sql.replace("?", "%s").encode(), parameters)


def _connection_kwargs(url: str, connect_timeout: float) -> dict[str, Any]:
    """libpq settings the store needs, unless the URL sets them itself."""
    given = conninfo_to_dict(url)
    wanted: dict[str, Any] = {
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": "voicebot",
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
        "tcp_user_timeout": 15_000,  # ms: unacknowledged data on a dead peer fails the call, not hangs it
    }
    kwargs = {k: v for k, v in wanted.items() if k not in given}
    kwargs["autocommit"] = True  # transactions are explicit (conn.transaction()) in the write chokepoint
    return kwargs


class PostgresStore(SQLStore):
    """PostgreSQL-backed :class:`~voicebot.store.Store`. Open with :meth:`open` or :func:`open_database`."""

    def __init__(
        self, pool: ConnectionPool, *, url: str, now: Callable[[], float], guard: Guard, read_guard: Guard,
        acquire_timeout: float, close_timeout: float, pool_size: int,
    ) -> None:
        """Wrap an open pool whose database is migrated; use :meth:`open` instead."""
        self._pool: ConnectionPool | None = pool
        self._url = redact_url(url)
        self._now = now
        self._guard = guard
        self._read_guard = read_guard
        self._acquire_timeout = acquire_timeout
        self._close_timeout = close_timeout
        self._threads = trio.CapacityLimiter(pool_size)
        self._closing = False
        self._inflight = 0
        self._idle = trio.Event()
        self._idle.set()

    @classmethod
    async def open(
        cls, url: str, *, now: Callable[[], float] = time.time, guard: Guard | None = None,
        read_guard: Guard | None = None, connect_timeout: float = 5.0, statement_timeout: float = 10.0,
        acquire_timeout: float = 5.0, close_timeout: float = 10.0, pool_size: int = 4,
    ) -> PostgresStore:
        """Connect to ``url`` (``postgresql://user:password@host:port/db``), migrate, and return the store.

        ``now`` supplies stored wall-clock timestamps; ``guard``/``read_guard`` wrap every write/read attempt.
        Raises :class:`PersistenceError` (``database_unavailable`` when the server cannot be reached within
        ``connect_timeout``, ``schema_too_new`` for a database from newer code).
        """
        if min(connect_timeout, statement_timeout, acquire_timeout, close_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        try:
            pool = await trio.to_thread.run_sync(
                _open_pool, url, connect_timeout, statement_timeout, acquire_timeout, pool_size,
                thread_name="voicebot-store-open",
            )
        except VoiceBotError as exc:
            exc.context.setdefault("database", redact_url(url))
            raise
        except Exception as exc:
            error = mapped_error(exc, "open")
            error.context["database"] = redact_url(url)
            error.context["detail"] = str(error.context.get("detail", "")).replace(url, redact_url(url))
            raise error from exc
        chosen = guard if guard is not None else direct
        return cls(
            pool, url=url, now=now, guard=chosen, read_guard=read_guard or chosen, acquire_timeout=acquire_timeout,
            close_timeout=close_timeout, pool_size=pool_size,
        )

    @property
    def url(self) -> str:
        """The database URL with its password replaced by ``***`` (safe to log)."""
        return self._url

    # -- chokepoints ------------------------------------------------------------------------------------

    def _run(self, fn: Callable[[_sql.Connection], _T], write: bool) -> _T:
        """In a worker thread: borrow a connection (bounded wait), run ``fn`` (in a transaction for writes)."""
        pool = self._pool
        if pool is None:
            raise self._closed_error("run")
        with pool.connection(timeout=self._acquire_timeout) as conn:
            if not write:
                return fn(_Adapter(conn))
            with conn.transaction():  # BEGIN … COMMIT; rolled back on any exception, commit failure included
                return fn(_Adapter(conn))

    async def _call(self, write: bool, fn: Callable[[_sql.Connection], _T], operation: str) -> _T:
        """One attempt: fault point, then ``fn`` in a worker thread; failures mapped to VoiceBotErrors."""
        if self._pool is None:
            raise self._closed_error(operation)
        self._inflight += 1
        self._idle = trio.Event() if self._inflight == 1 else self._idle
        try:
            await faults.point("store.write" if write else "store.read", operation=operation)  # mapped below
            return await trio.to_thread.run_sync(self._run, fn, write, limiter=self._threads,
                                                 thread_name="voicebot-store")
        except VoiceBotError:
            raise
        except Exception as exc:
            raise mapped_error(exc, operation) from exc
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _write(self, operation: str, fn: Callable[[_sql.Connection], _T]) -> _T:
        """THE write chokepoint: one committed transaction per attempt, under the guard."""

        async def attempt() -> _T:
            return await self._call(True, fn, operation)

        return await self._guarded(self._guard, attempt, operation)

    async def _read(self, operation: str, fn: Callable[[_sql.Connection], _T]) -> _T:
        """The read chokepoint (autocommit statements: each sees the last committed state) under the read guard."""

        async def attempt() -> _T:
            return await self._call(False, fn, operation)

        return await self._guarded(self._read_guard, attempt, operation)

    # -- closing ----------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the store: shielded, bounded by ``close_timeout``; calls already running finish first.

        New calls fail with ``store_closed`` at once. Connections still busy at the deadline are closed by
        the pool (their transactions roll back on the server) and a warning is logged.
        """
        if self._closing:
            return
        self._closing = True
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._close_timeout) as waited:
                await self._idle.wait()
            if waited.cancelled_caught:
                _log.warning("store %s: closing timed out with %d calls running", self._url, self._inflight)
            pool, self._pool = self._pool, None
            if pool is not None:
                await trio.to_thread.run_sync(pool.close, 1.0 if waited.cancelled_caught else self._close_timeout)


def _open_pool(
    url: str, connect_timeout: float, statement_timeout: float, acquire_timeout: float, pool_size: int
) -> ConnectionPool:
    ms = max(1, round(statement_timeout * 1000))

    def configure(conn: psycopg.Connection[Any]) -> None:
        # set_config instead of SET: parameters cannot be bound in SET. Idle transactions end after 60 s so a
        # stuck client can never hold row locks forever.
        conn.execute(b"SELECT set_config('statement_timeout', %s, false), "
                     b"set_config('idle_in_transaction_session_timeout', '60000', false)", (str(ms),))

    pool: ConnectionPool = ConnectionPool(
        url, kwargs=_connection_kwargs(url, connect_timeout), min_size=1, max_size=pool_size, open=False,
        configure=configure, check=ConnectionPool.check_connection, timeout=acquire_timeout,
        name="voicebot-store", reconnect_timeout=60.0,
    )
    try:
        pool.open(wait=True, timeout=connect_timeout)
        with pool.connection(timeout=acquire_timeout) as conn:
            migrate(conn)
    except BaseException:
        pool.close(timeout=1.0)
        raise
    return pool


def _conforms(store: PostgresStore) -> Store:  # pragma: no cover - static check that PostgresStore is a Store
    return store
