"""Immutable records returned by the store."""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs

__all__ = ["AuditEntry", "AuditEvent", "LobbyRecord", "NameRecord", "SessionKind", "SessionRecord"]

#: What a session belongs to: a human client or a bot worker.
SessionKind = Literal["user", "bot"]


class AuditEvent(enum.StrEnum):
    """Well-known audit event names (``append_audit`` accepts any non-empty string)."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    RESUME = "resume"
    JOIN = "join"
    LEAVE = "leave"
    LOBBY_CREATE = "lobby_create"
    LOBBY_DELETE = "lobby_delete"
    NAME_REGISTER = "name_register"
    AUTH_FAILED = "auth_failed"
    AUTH_LOCKED = "auth_locked"
    ADMIN_ACTION = "admin_action"


@attrs.frozen
class LobbyRecord:
    """A stored lobby."""

    id: str
    name: str
    private: bool
    password_hash: str | None
    """Argon2 hash of the lobby password, None for an open lobby."""
    max_members: int
    persistent: bool
    """Persistent lobbies are recreated at startup (:meth:`Store.list_lobbies`)."""
    created: float
    """Wall-clock epoch seconds (from the store's ``now``)."""


@attrs.frozen
class NameRecord:
    """A registered (password-protected) display name."""

    name: str
    """The name as registered (trimmed)."""
    key: str
    """The unique key: :func:`voicebot.auth.name_key` of the name (trimmed, casefolded)."""
    password_hash: str
    created: float


@attrs.frozen
class SessionRecord:
    """What a client needs to resume after a server restart within its grace period."""

    session_id: str
    peer_id: str
    name: str | None
    lobby_id: str | None
    """The lobby the peer was in; set to None by the database when that lobby is deleted."""
    resume_token_hash: str
    """:func:`voicebot.auth.token_hash` of the resume token; the token itself is never stored."""
    kind: SessionKind = attrs.field(validator=attrs.validators.in_(("user", "bot")))
    disconnected_at: float | None
    """Wall-clock epoch seconds of the disconnect, None while connected."""
    expires_at: float
    """Wall-clock epoch seconds after which the session can no longer be resumed."""


@attrs.frozen
class AuditEntry:
    """One audit log row."""

    id: int
    ts: float
    event: str
    peer_id: str | None
    name: str | None
    remote: str | None
    """Remote address of the client, as the hub saw it."""
    correlation_id: str | None
    detail: dict[str, Any] = attrs.field(hash=False)
    """Free-form JSON object."""
