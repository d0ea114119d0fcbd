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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import trio

from voicebot import faults
from voicebot.auth import name_key
from voicebot.errors import PersistenceError, ValidationError, VoiceBotError, classify, map_exception

from . import _sql
from ._conn import Synchronous, close_connections, open_connections, transaction
from ._protocol import Guard, Store, direct
from ._records import AuditEntry, LobbyRecord, NameRecord, SessionRecord

__all__ = ["MAX_AUDIT_PAGE", "SQLiteStore", "Synchronous", "open_store"]

_T = TypeVar("_T")
_log = logging.getLogger("voicebot.store")
#: Largest page :meth:`SQLiteStore.list_audit` returns.
MAX_AUDIT_PAGE = 1000


def _mapped(exc: Exception, operation: str) -> VoiceBotError:
    # A group (e.g. from a guard that uses a nursery) keeps its most severe part; ExceptionGroup cannot
    # hold Cancelled, so classify() is safe here. Both paths go through map_exception.
    error = classify(exc).error if isinstance(exc, ExceptionGroup) else map_exception(exc)
    error.context.setdefault("operation", operation)
    return error


def _require(value: str, field: str) -> str:
    if not value or not value.strip():
        raise ValidationError(f"{field} must not be empty", code="invalid_field", field=field)
    return value


class SQLiteStore:
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
            raise _mapped(exc, "open") from exc
        chosen = guard if guard is not None else direct
        return cls(
            writer, reader, path=fspath, now=now, guard=chosen, read_guard=read_guard or chosen,
            lock_timeout=lock_timeout, close_timeout=close_timeout,
        )

    @property
    def path(self) -> str:
        """The database path as given."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closing

    async def __aenter__(self) -> SQLiteStore:
        """Return the store itself."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        await self.aclose()

    # -- chokepoints ------------------------------------------------------------------------------------

    def _closed_error(self, operation: str) -> PersistenceError:
        return PersistenceError("storage closed", code="store_closed", retryable=False,
                                context={"operation": operation})

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
                raise _mapped(exc, operation) from exc
        finally:
            lock.release()

    async def _guarded(self, guard: Guard, attempt: Callable[[], Awaitable[_T]], operation: str) -> _T:
        if self._closing:
            raise self._closed_error(operation)
        try:
            return await guard(attempt)
        except VoiceBotError:
            raise
        except Exception as exc:  # a guard's own failure (its errors should already be VoiceBotErrors)
            raise _mapped(exc, operation) from exc

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

    # -- lobbies ----------------------------------------------------------------------------------------

    async def create_lobby(
        self, lobby_id: str, name: str, *, max_members: int, private: bool = False,
        password_hash: str | None = None, persistent: bool = False,
    ) -> LobbyRecord:
        """Store a new lobby; ``LobbyError`` ``lobby_exists`` if the id is taken."""
        if max_members < 1:
            raise ValidationError("max_members must be at least 1", code="invalid_field", field="max_members")
        lobby = LobbyRecord(
            id=_require(lobby_id, "lobby_id"), name=_require(name, "name"), private=private,
            password_hash=password_hash, max_members=max_members, persistent=persistent, created=self._now(),
        )
        return await self._write("create_lobby", lambda conn: _sql.insert_lobby(conn, lobby))

    async def delete_lobby(self, lobby_id: str) -> bool:
        """Delete a lobby (its sessions keep existing with ``lobby_id=None``); False if absent."""
        return await self._write("delete_lobby", lambda conn: _sql.delete_lobby(conn, lobby_id))

    async def get_lobby(self, lobby_id: str) -> LobbyRecord | None:
        """The lobby with this id, or None."""
        return await self._read("get_lobby", lambda conn: _sql.select_lobby(conn, lobby_id))

    async def list_lobbies(self, *, persistent_only: bool = True) -> list[LobbyRecord]:
        """Lobbies ordered by creation (only persistent ones by default: what to recreate at startup)."""
        return await self._read("list_lobbies", lambda conn: _sql.select_lobbies(conn, persistent_only))

    # -- registered names -------------------------------------------------------------------------------

    async def register_name(self, name: str, password_hash: str) -> NameRecord:
        """Register ``name``; ``AuthError`` ``name_taken`` if its key is already registered."""
        record = NameRecord(
            name=_require(name, "name").strip(), key=name_key(name),
            password_hash=_require(password_hash, "password_hash"), created=self._now(),
        )
        return await self._write("register_name", lambda conn: _sql.insert_name(conn, record))

    async def get_name_record(self, name: str) -> NameRecord | None:
        """The registration matching ``name`` case-insensitively, or None."""
        key = name_key(name)
        if not key:
            return None
        return await self._read("get_name_record", lambda conn: _sql.select_name(conn, key))

    async def list_names(self) -> list[NameRecord]:
        """Every registered name (the server caches them so logins work while the database is down)."""
        return await self._read("list_names", _sql.select_names)

    async def update_name_password(self, name: str, password_hash: str) -> bool:
        """Replace a registered name's hash (after ``needs_rehash``); False if not registered."""
        key, new_hash = name_key(name), _require(password_hash, "password_hash")
        return await self._write("update_name_password", lambda conn: _sql.update_name_password(conn, key, new_hash))

    async def delete_name(self, name: str) -> bool:
        """Remove a registration (admin action); False if not registered."""
        key = name_key(name)
        return await self._write("delete_name", lambda conn: _sql.delete_name(conn, key))

    # -- sessions ---------------------------------------------------------------------------------------

    async def save_session(self, session: SessionRecord) -> None:
        """Insert or replace the session with ``session.session_id`` (``updated`` from the store clock)."""
        _require(session.session_id, "session_id")
        _require(session.resume_token_hash, "resume_token_hash")
        updated = self._now()
        await self._write("save_session", lambda conn: _sql.upsert_session(conn, session, updated))

    async def find_session_by_token_hash(self, token_hash: str, *, now: float | None = None) -> SessionRecord | None:
        """The session whose resume token hashes to ``token_hash`` and that is unexpired at ``now``, or None."""
        at = self._now() if now is None else now
        return await self._read("find_session", lambda conn: _sql.select_session_by_token(conn, token_hash, at))

    async def list_sessions(self, *, now: float | None = None) -> list[SessionRecord]:
        """Every session still resumable at ``now`` (default: the store's clock), for restore at startup."""
        at = self._now() if now is None else now
        return await self._read("list_sessions", lambda conn: _sql.select_sessions(conn, at))

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session; False if absent."""
        return await self._write("delete_session", lambda conn: _sql.delete_session(conn, session_id))

    async def purge_expired(self, now: float | None = None) -> int:
        """Delete sessions with ``expires_at <= now`` (default: the store's clock); returns the count."""
        at = self._now() if now is None else now
        return await self._write("purge_expired", lambda conn: _sql.purge_sessions(conn, at))

    # -- audit ------------------------------------------------------------------------------------------

    async def append_audit(
        self, event: str, *, peer_id: str | None = None, name: str | None = None, remote: str | None = None,
        correlation_id: str | None = None, detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one audit entry (committed on return, timestamped by the store clock); returns its id."""
        _require(event, "event")
        ts = self._now()
        return await self._write(
            "append_audit",
            lambda conn: _sql.insert_audit(
                conn, ts, str(event), peer_id=peer_id, name=name, remote=remote, correlation_id=correlation_id,
                detail=detail,
            ),
        )

    async def list_audit(self, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
        """Up to ``limit`` (at most :data:`MAX_AUDIT_PAGE`) entries with ``id < before_id``, newest first."""
        if limit < 1:
            raise ValidationError("limit must be at least 1", code="invalid_field", field="limit")
        page = min(limit, MAX_AUDIT_PAGE)
        return await self._read("list_audit", lambda conn: _sql.select_audit(conn, page, before_id))

    async def prune_audit(self, before_ts: float) -> int:
        """Delete audit entries with ``ts < before_ts`` (retention); returns the count."""
        return await self._write("prune_audit", lambda conn: _sql.prune_audit(conn, before_ts))

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
