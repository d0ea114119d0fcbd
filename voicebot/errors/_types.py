"""The VoiceBotError hierarchy, severities and categories.

Every failure in voicebot is, or is mapped into, a :class:`VoiceBotError`. Its ``message`` is safe to
show a client; internals stay in ``context`` (logged, never sent) and in ``__cause__``.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = [
    "AuthError",
    "Category",
    "LobbyError",
    "PersistenceError",
    "ProviderError",
    "RateLimitError",
    "SessionError",
    "Severity",
    "ValidationError",
    "VoiceBotError",
    "WebRTCError",
    "WebSocketError",
]


class Severity(enum.IntEnum):
    """How bad an error is; decides what the error handler does (see README "Severity")."""

    LOW = 1
    """Error reply; the connection continues."""
    MEDIUM = 2
    """Error reply plus the error's registered recovery action."""
    HIGH = 3
    """Notify, then close that one connection with a specific close code."""
    CRITICAL = 4
    """Notify, close, and mark the affected subsystem unhealthy."""

    @property
    def label(self) -> str:
        """The lower-case name used on the wire and in statistics."""
        return self.name.lower()


class Category(enum.StrEnum):
    """Where an error comes from; sent to clients and used as a statistics dimension."""

    WEBSOCKET = "websocket"
    WEBRTC = "webrtc"
    SESSION = "session"
    LOBBY = "lobby"
    AUTH = "auth"
    PERSISTENCE = "persistence"
    NETWORK = "network"
    VALIDATION = "validation"
    SYSTEM = "system"
    PROVIDER = "provider"
    RATE_LIMIT = "rate_limit"


#: Close code used for HIGH/CRITICAL errors that do not name their own.
DEFAULT_CLOSE_CODE = 1011


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class VoiceBotError(Exception):
    """Base of every voicebot error.

    Subclasses only change defaults; any field can be overridden per instance, e.g.
    ``LobbyError("lobby is full", code="lobby_full")``.
    """

    message: str = attrs.field(default="internal server error", kw_only=False)
    """User-safe text: what went wrong and, for validation errors, which field."""
    code: str = "internal_error"
    """snake_case machine-readable code (public contract)."""
    category: Category = Category.SYSTEM
    severity: Severity = Severity.LOW
    retryable: bool = False
    """True when the same request may succeed later unchanged."""
    context: dict[str, Any] = attrs.field(factory=dict)
    """Structured details for logs (never sent to clients)."""
    field: str | None = None
    """The offending request field (dotted path), for validation errors."""
    retry_after: float | None = None
    """Seconds after which a retry makes sense, when known."""
    close_code: int | None = None
    """WebSocket close code for HIGH/CRITICAL errors (default 1011)."""
    recovery: str | None = None
    """Name of the recovery action for MEDIUM errors (e.g. ``resend_state``)."""
    subsystem: str | None = None
    """Subsystem to mark unhealthy for CRITICAL errors (defaults to the category)."""

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"[{self.category}/{self.severity.label}/{self.code}] {self.message}{where}"

    def to_wire(self) -> dict[str, Any]:
        """The client-visible part of this error, as put in an ``error`` message."""
        body: dict[str, Any] = {
            "code": self.code,
            "category": str(self.category),
            "severity": self.severity.label,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class WebSocketError(VoiceBotError):
    """Transport-level failure of a client's WebSocket."""

    message: str = attrs.field(default="websocket failure", kw_only=False)
    code: str = "websocket_error"
    category: Category = Category.WEBSOCKET


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class WebRTCError(VoiceBotError):
    """Signaling or media failure (SDP, ICE, peer connection)."""

    message: str = attrs.field(default="webrtc failure", kw_only=False)
    code: str = "webrtc_error"
    category: Category = Category.WEBRTC
    severity: Severity = Severity.MEDIUM


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class SessionError(VoiceBotError):
    """Session lifecycle failure (hello, resume, grace)."""

    message: str = attrs.field(default="session error", kw_only=False)
    code: str = "session_error"
    category: Category = Category.SESSION


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class LobbyError(VoiceBotError):
    """Lobby membership failure (not found, full, wrong password…)."""

    message: str = attrs.field(default="lobby error", kw_only=False)
    code: str = "lobby_error"
    category: Category = Category.LOBBY


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class AuthError(VoiceBotError):
    """Authentication or authorisation failure."""

    message: str = attrs.field(default="authentication failed", kw_only=False)
    code: str = "auth_failed"
    category: Category = Category.AUTH


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class PersistenceError(VoiceBotError):
    """The store could not complete an operation."""

    message: str = attrs.field(default="storage unavailable, try again later", kw_only=False)
    code: str = "persistence_error"
    category: Category = Category.PERSISTENCE
    severity: Severity = Severity.MEDIUM
    retryable: bool = True


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class ValidationError(VoiceBotError):
    """A client request that is malformed; ``field`` names the offending field."""

    message: str = attrs.field(default="invalid message", kw_only=False)
    code: str = "invalid_message"
    category: Category = Category.VALIDATION


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class ProviderError(VoiceBotError):
    """An AI/bot provider or bot worker failed."""

    message: str = attrs.field(default="provider unavailable", kw_only=False)
    code: str = "provider_error"
    category: Category = Category.PROVIDER
    severity: Severity = Severity.MEDIUM
    retryable: bool = True


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class RateLimitError(VoiceBotError):
    """Too many requests or errors; ``retry_after`` says when to come back."""

    message: str = attrs.field(default="too many requests", kw_only=False)
    code: str = "rate_limited"
    category: Category = Category.RATE_LIMIT
    retryable: bool = True
