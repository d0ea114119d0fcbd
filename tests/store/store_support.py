"""Helpers shared by the store tests (imported as a top-level module: tests/store is on sys.path)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs

from voicebot.store import PostgresStore, SessionKind, SessionRecord, SQLiteStore, Store, is_postgres_url


class FakeClock:
    """A settable ``now`` callable for the store's stored timestamps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@attrs.frozen
class Backend:
    """A database location (SQLite path or PostgreSQL URL) for tests that run on both engines."""

    name: str
    location: str

    @property
    def postgres(self) -> bool:
        return is_postgres_url(self.location)

    @asynccontextmanager
    async def open(self, *, now: Callable[[], float] | None = None, **kwargs: Any) -> AsyncIterator[Store]:
        """Open the store (guards and timeouts in ``kwargs``) and close it on exit."""
        extra: dict[str, Any] = dict(kwargs)
        if now is not None:
            extra["now"] = now
        store: Store
        if self.postgres:
            store = await PostgresStore.open(self.location, **extra)
        else:
            store = await SQLiteStore.open(self.location, **extra)
        try:
            yield store
        finally:
            await store.aclose()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read through a brand-new connection: only committed data is visible to it."""
        if self.postgres:
            import psycopg  # noqa: PLC0415

            with psycopg.connect(self.location, autocommit=True) as conn:
                return [tuple(row) for row in conn.execute(sql.encode()).fetchall()]
        conn = sqlite3.connect(self.location)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def session(
    session_id: str = "s1", *, token_hash: str = "h1", lobby_id: str | None = None, expires_at: float = 1_700_000_100.0,
    disconnected_at: float | None = None, kind: SessionKind = "user",
) -> SessionRecord:
    """A session record with sensible defaults."""
    return SessionRecord(
        session_id=session_id, peer_id=f"peer-{session_id}", name="Alice", lobby_id=lobby_id,
        resume_token_hash=token_hash, kind=kind,
        disconnected_at=disconnected_at, expires_at=expires_at,
    )
