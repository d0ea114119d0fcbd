"""The one place where foreign exceptions become VoiceBotErrors (like httpcore's ``map_exceptions``).

``classify(exc)`` flattens nested (Base)ExceptionGroups, maps every leaf, and returns the most severe
classification with all parts kept. ``trio.Cancelled``, ``KeyboardInterrupt``, ``SystemExit`` and
``GeneratorExit`` are never classified: :func:`split_passthrough` separates them so callers re-raise them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import attrs
import trio
import trio_websocket

from ._types import (
    Category,
    PersistenceError,
    ProviderError,
    Severity,
    ValidationError,
    VoiceBotError,
    WebRTCError,
    WebSocketError,
)

__all__ = ["PASSTHROUGH", "Classification", "classify", "flatten", "map_exception", "split_passthrough"]

#: Exceptions that are control flow, not failures: never classified, counted or swallowed.
PASSTHROUGH: tuple[type[BaseException], ...] = (trio.Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit)


@attrs.frozen
class Classification:
    """The result of classifying one exception (possibly a group of many)."""

    error: VoiceBotError
    """The most severe part; what the client is told and what decides the handling."""
    parts: tuple[VoiceBotError, ...]
    """Every classified leaf, in traversal order (``error`` is one of them)."""
    originals: tuple[BaseException, ...]
    """The leaves as raised, aligned with ``parts``."""

    @property
    def severity(self) -> Severity:
        """Severity of the primary error."""
        return self.error.severity


def split_passthrough(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """Split ``exc`` into (control-flow part to re-raise, failure part to classify); either may be None."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(PASSTHROUGH)
    if isinstance(exc, PASSTHROUGH):
        return exc, None
    return None, exc


def flatten(exc: BaseException) -> Iterator[BaseException]:
    """Yield the leaves of arbitrarily nested exception groups, depth first."""
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from flatten(sub)
    else:
        yield exc


def _sqlite_error(exc: sqlite3.Error) -> VoiceBotError:
    if isinstance(exc, sqlite3.IntegrityError):
        return PersistenceError(
            "the change conflicts with stored data", code="constraint_violation",
            severity=Severity.LOW, retryable=False,
        )
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return PersistenceError("storage busy, try again", code="database_busy")
        return PersistenceError(code="database_unavailable")
    if isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc).lower():
        return PersistenceError(
            "storage failure", code="database_corrupt", severity=Severity.CRITICAL,
            retryable=False, subsystem="persistence",
        )
    return PersistenceError(code="database_error", severity=Severity.HIGH, retryable=False)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (only the delta-seconds form; HTTP dates are ignored), capped at an hour."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 else min(seconds, 3600.0)


def _httpx_error(exc: BaseException) -> VoiceBotError:
    """AI-provider HTTP failures (httpx): 429/5xx/network/timeouts are retryable, other 4xx are not.

    Only the status and URL reach the context (``str(exc)``); headers and bodies never do, so a key echoed back
    by a server cannot leak into logs.
    """
    import httpx  # noqa: PLC0415 - only when an httpx exception is actually being classified

    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        context = {"status": status}
        if status == 429:
            return ProviderError("AI provider rate limit reached", code="provider_rate_limited", context=context,
                                 retry_after=_retry_after(exc.response.headers.get("retry-after")))
        if status >= 500:
            return ProviderError("AI provider failed", code="provider_server_error", context=context,
                                 retry_after=_retry_after(exc.response.headers.get("retry-after")))
        if status in (401, 403):
            return ProviderError("AI provider rejected the credentials", code="provider_auth_failed",
                                 retryable=False, context=context)
        return ProviderError("AI provider rejected the request", code="provider_rejected", retryable=False,
                             context=context)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError("AI provider timed out", code="provider_timeout")
    if isinstance(exc, httpx.TransportError):
        return ProviderError("AI provider unreachable", code="provider_unreachable")
    return ProviderError("AI provider call failed", code="provider_error", retryable=False)
#: SQLSTATEs (or their two-character classes) PostgreSQL uses for "try again": the transaction lost a race
#: (serialization failure, deadlock), waited too long (lock_timeout, statement_timeout), or the server is
#: restarting or out of connections/disk.
_PG_BUSY = {"40001", "40P01", "55P03", "57014"}
_PG_UNAVAILABLE = {"08", "53", "57P01", "57P02", "57P03", "58"}


def _postgres_error(exc: Exception) -> VoiceBotError:
    """psycopg / psycopg_pool exceptions (imported lazily: SQLite-only servers never load psycopg)."""
    import psycopg  # noqa: PLC0415
    import psycopg_pool  # noqa: PLC0415

    if isinstance(exc, psycopg_pool.PoolClosed):
        return PersistenceError("storage closed", code="store_closed", retryable=False)
    if isinstance(exc, psycopg_pool.PoolTimeout):  # no usable connection in time: mostly a server that is down
        return PersistenceError(code="database_unavailable")
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return PersistenceError("storage busy, try again", code="database_busy")
    state = getattr(exc, "sqlstate", None) or ""
    if state in _PG_BUSY:
        return PersistenceError("storage busy, try again", code="database_busy")
    if state in _PG_UNAVAILABLE or state[:2] in _PG_UNAVAILABLE:
        return PersistenceError(code="database_unavailable")
    if isinstance(exc, psycopg.IntegrityError):
        return PersistenceError(
            "the change conflicts with stored data", code="constraint_violation",
            severity=Severity.LOW, retryable=False,
        )
    if isinstance(exc, psycopg.DataError):  # e.g. a NUL character, which PostgreSQL text cannot hold
        return PersistenceError(
            "the value cannot be stored", code="constraint_violation", severity=Severity.LOW, retryable=False,
        )
    if state.startswith("XX"):  # data_corrupted, index_corrupted, internal errors
        return PersistenceError(
            "storage failure", code="database_corrupt", severity=Severity.CRITICAL,
            retryable=False, subsystem="persistence",
        )
    if isinstance(exc, psycopg.OperationalError):  # connection failure (no SQLSTATE): server down or unreachable
        return PersistenceError(code="database_unavailable")
    return PersistenceError(code="database_error", severity=Severity.HIGH, retryable=False)


def _foreign_module(exc: BaseException) -> str:
    return type(exc).__module__.split(".", 1)[0]


def map_exception(exc: BaseException) -> VoiceBotError:
    """Map one leaf exception to a VoiceBotError (the leaf itself if it already is one).

    The original is attached as ``__cause__`` and described in ``context``; client-visible messages
    of foreign exceptions are generic, so no internals leak.
    """
    if isinstance(exc, VoiceBotError):
        return exc
    mapped = _map_foreign(exc)
    mapped.__cause__ = exc
    mapped.context.setdefault("exception", f"{type(exc).__module__}.{type(exc).__qualname__}")
    mapped.context.setdefault("detail", str(exc)[:500])
    return mapped


def _map_foreign(exc: BaseException) -> VoiceBotError:
    if isinstance(exc, json.JSONDecodeError):
        return ValidationError(
            f"message is not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json"
        )
    if isinstance(exc, UnicodeDecodeError):
        return ValidationError("message is not valid UTF-8", code="invalid_encoding")
    if isinstance(exc, trio_websocket.ConnectionClosed):
        return WebSocketError("connection closed", code="connection_closed", retryable=True)
    if isinstance(exc, trio_websocket.HandshakeError):
        return WebSocketError("websocket handshake failed", code="handshake_failed")
    if isinstance(exc, trio.BrokenResourceError):
        return VoiceBotError(
            "connection lost", code="connection_broken", category=Category.NETWORK,
            severity=Severity.MEDIUM, retryable=True,
        )
    if isinstance(exc, trio.ClosedResourceError):
        return VoiceBotError(
            "resource already closed", code="resource_closed", category=Category.SYSTEM,
            severity=Severity.MEDIUM,
        )
    if isinstance(exc, trio.TooSlowError | TimeoutError):
        return VoiceBotError(
            "operation timed out", code="timeout", category=Category.NETWORK,
            severity=Severity.MEDIUM, retryable=True,
        )
    if isinstance(exc, sqlite3.Error):
        return _sqlite_error(exc)
    module = _foreign_module(exc)
    if module in ("httpx", "httpcore"):
        return _httpx_error(exc)
    if module in ("psycopg", "psycopg_pool") and isinstance(exc, Exception):
        return _postgres_error(exc)
    if module == "aioice":
        return WebRTCError("ICE connectivity failed", code="ice_failed", retryable=True, recovery="ice_restart")
    if module == "aiortc":
        return WebRTCError("peer connection failure", code="webrtc_error", recovery="rebuild_peer")
    if module == "av":
        return WebRTCError("media codec failure", code="media_error")
    if isinstance(exc, ConnectionError):
        return VoiceBotError(
            "connection lost", code="connection_lost", category=Category.NETWORK,
            severity=Severity.MEDIUM, retryable=True,
        )
    if isinstance(exc, MemoryError):
        return VoiceBotError(code="out_of_memory", severity=Severity.CRITICAL, subsystem="system")
    if isinstance(exc, OSError):
        return VoiceBotError(
            "system resource failure", code="os_error", category=Category.SYSTEM, severity=Severity.HIGH,
        )
    return VoiceBotError(code="internal_error", category=Category.SYSTEM, severity=Severity.HIGH)


def classify(exc: BaseException) -> Classification:
    """Classify ``exc`` (an exception or nested group without passthrough parts).

    Raises ``TypeError`` if ``exc`` contains a passthrough exception: split it first with
    :func:`split_passthrough` so ``Cancelled`` can never be counted by mistake.
    """
    originals = tuple(flatten(exc))
    if not originals:
        raise ValueError("cannot classify an empty exception group")
    for leaf in originals:
        if isinstance(leaf, PASSTHROUGH):
            raise TypeError(f"{type(leaf).__name__} must propagate, not be classified")
    parts = tuple(map_exception(leaf) for leaf in originals)
    primary = parts[0]
    for part in parts[1:]:
        if part.severity > primary.severity:
            primary = part
    return Classification(error=primary, parts=parts, originals=originals)
