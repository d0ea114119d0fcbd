"""The store operations both engines share: validation, timestamps and the SQL each one runs.

:class:`SQLStore` implements every :class:`~voicebot.store.Store` method on top of two chokepoints a
backend provides: ``_write(operation, fn)`` (one committed transaction per attempt, under the guard, fault
point ``store.write``) and ``_read(operation, fn)`` (fault point ``store.read``). ``fn`` runs the shared
statements of :mod:`._sql` on a connection in a worker thread. So SQLite and PostgreSQL validate, stamp and
answer identically; only connections, transactions and error mapping differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from voicebot.auth import name_key
from voicebot.errors import PersistenceError, ValidationError, VoiceBotError, classify, map_exception

from . import _sql
from ._protocol import Guard
from ._records import AuditEntry, LobbyRecord, NameRecord, SessionRecord

__all__ = ["MAX_AUDIT_PAGE", "SQLStore", "mapped_error"]

_T = TypeVar("_T")

#: Largest page :meth:`SQLStore.list_audit` returns.
MAX_AUDIT_PAGE = 1000


def mapped_error(exc: Exception, operation: str) -> VoiceBotError:
    """``exc`` as a VoiceBotError (through the one mapping point), tagged with the store ``operation``."""
    # A group (e.g. from a guard that uses a nursery) keeps its most severe part; ExceptionGroup cannot
    # hold Cancelled, so classify() is safe here. Both paths go through map_exception.
    error = classify(exc).error if isinstance(exc, ExceptionGroup) else map_exception(exc)
    error.context.setdefault("operation", operation)
    return error


def _require(value: str, field: str) -> str:
    if not value or not value.strip():
        raise ValidationError(f"{field} must not be empty", code="invalid_field", field=field)
    return value


class SQLStore:
    """Base of the SQL-backed stores; subclasses set ``_now`` and ``_closing`` and implement ``_write``,
    ``_read`` and ``aclose``."""

    _now: Callable[[], float]
    _closing: bool

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closing

    async def aclose(self) -> None:
        """Finish what is running and close the database connections (idempotent)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """Return the store itself."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        await self.aclose()

    async def _guarded(self, guard: Guard, attempt: Callable[[], Awaitable[_T]], operation: str) -> _T:
        """Run one operation's attempts under ``guard``; refused once the store is closing."""
        if self._closing:
            raise self._closed_error(operation)
        try:
            return await guard(attempt)
        except VoiceBotError:
            raise
        except Exception as exc:  # a guard's own failure (its errors should already be VoiceBotErrors)
            raise mapped_error(exc, operation) from exc

    def _closed_error(self, operation: str) -> PersistenceError:
        return PersistenceError("storage closed", code="store_closed", retryable=False,
                                context={"operation": operation})

    async def _write(self, operation: str, fn: Callable[[_sql.Connection], _T]) -> _T:
        """THE write chokepoint: run ``fn`` in one committed transaction per attempt, under the guard."""
        raise NotImplementedError

    async def _read(self, operation: str, fn: Callable[[_sql.Connection], _T]) -> _T:
        """The read chokepoint: run ``fn`` under the read guard."""
        raise NotImplementedError

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
