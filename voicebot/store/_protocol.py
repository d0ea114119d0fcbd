"""The storage interface the hub depends on, so a networked database can replace SQLite later."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from ._records import AuditEntry, LobbyRecord, NameRecord, SessionRecord

__all__ = ["Guard", "Store", "direct"]

_T = TypeVar("_T")


class Guard(Protocol):
    """Wraps every store operation, e.g. with a retry strategy and a circuit breaker.

    It receives a zero-argument coroutine function performing one complete attempt (one transaction
    for writes) and returns its result; it may call it several times. The attempt raises only
    :class:`~voicebot.errors.VoiceBotError` (use ``retryable``) or ``trio.Cancelled``.
    """

    def __call__(self, operation: Callable[[], Awaitable[_T]], /) -> Awaitable[_T]:
        """Run ``operation`` (possibly several times) and return its result."""
        ...


async def direct(operation: Callable[[], Awaitable[_T]], /) -> _T:
    """The default :class:`Guard`: one attempt, no retry."""
    return await operation()


class Store(Protocol):
    """Durable state of the server. Every method raises only VoiceBotErrors (or ``trio.Cancelled``).

    Write-before-acknowledge: when a writing coroutine returns, its transaction is committed and
    durable, so the caller may acknowledge to the client; if it raises, nothing was written.
    """

    async def create_lobby(
        self, lobby_id: str, name: str, *, max_members: int, private: bool = False,
        password_hash: str | None = None, persistent: bool = False,
    ) -> LobbyRecord:
        """Store a new lobby; ``LobbyError`` ``lobby_exists`` if the id is taken."""
        ...

    async def delete_lobby(self, lobby_id: str) -> bool:
        """Delete a lobby (its sessions keep existing with ``lobby_id=None``); False if absent."""
        ...

    async def get_lobby(self, lobby_id: str) -> LobbyRecord | None:
        """The lobby with this id, or None."""
        ...

    async def list_lobbies(self, *, persistent_only: bool = True) -> list[LobbyRecord]:
        """Lobbies ordered by creation (only persistent ones by default: what to recreate at startup)."""
        ...

    async def register_name(self, name: str, password_hash: str) -> NameRecord:
        """Register ``name``; ``AuthError`` ``name_taken`` if its key is already registered."""
        ...

    async def get_name_record(self, name: str) -> NameRecord | None:
        """The registration matching ``name`` case-insensitively, or None."""
        ...

    async def list_names(self) -> list[NameRecord]:
        """Every registered name."""
        ...

    async def update_name_password(self, name: str, password_hash: str) -> bool:
        """Replace a registered name's hash (after ``needs_rehash``); False if not registered."""
        ...

    async def delete_name(self, name: str) -> bool:
        """Remove a registration (admin action); False if not registered."""
        ...

    async def save_session(self, session: SessionRecord) -> None:
        """Insert or replace the session with ``session.session_id``."""
        ...

    async def find_session_by_token_hash(self, token_hash: str, *, now: float | None = None) -> SessionRecord | None:
        """The unexpired session whose resume token hashes to ``token_hash``, or None."""
        ...

    async def list_sessions(self, *, now: float | None = None) -> list[SessionRecord]:
        """Every session still resumable at ``now``."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session; False if absent."""
        ...

    async def purge_expired(self, now: float | None = None) -> int:
        """Delete sessions with ``expires_at <= now`` (default: the store's clock); returns the count."""
        ...

    async def append_audit(
        self, event: str, *, peer_id: str | None = None, name: str | None = None, remote: str | None = None,
        correlation_id: str | None = None, detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one audit entry (committed on return); returns its id."""
        ...

    async def list_audit(self, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
        """Up to ``limit`` entries with ``id < before_id`` (if given), newest first."""
        ...

    async def prune_audit(self, before_ts: float) -> int:
        """Delete audit entries older than ``before_ts`` (retention); returns the count."""
        ...

    async def aclose(self) -> None:
        """Close the store (shielded, bounded); later calls raise ``PersistenceError`` ``store_closed``."""
        ...
