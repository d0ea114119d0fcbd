"""Schema versioning: ordered migrations tracked in ``PRAGMA user_version``.

Migration *n* (1-based position in :data:`MIGRATIONS`) moves the schema from version n-1 to n. Each one
runs in its own ``BEGIN IMMEDIATE`` transaction together with the ``user_version`` bump, so a crash or
error leaves the database at the previous version, never half-migrated; the version is re-read inside
the transaction, so two processes opening the same file cannot apply a step twice. A database whose
version is newer than this code knows is refused (``schema_too_new``): old code must not write to a
schema it does not understand. Append new migrations at the end; never edit released ones.
(``PRAGMA foreign_keys`` cannot change inside a transaction: a future table rebuild must follow
SQLite's 12-step ALTER procedure and check ``PRAGMA foreign_key_check`` itself.)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from voicebot.errors import PersistenceError, Severity

_T = TypeVar("_T")

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "migrate", "schema_too_new", "schema_version", "transaction"]

#: One migration step: runs its statements on a connection that is inside a transaction.
Migration = Callable[[sqlite3.Connection], None]


def _statements(*sql: str) -> Migration:
    def apply(conn: sqlite3.Connection) -> None:
        for statement in sql:
            conn.execute(statement)

    return apply


_V1 = _statements(
    """
    CREATE TABLE lobbies (
        id            TEXT PRIMARY KEY NOT NULL,
        name          TEXT NOT NULL,
        private       INTEGER NOT NULL CHECK (private IN (0, 1)),
        password_hash TEXT,
        max_members   INTEGER NOT NULL CHECK (max_members > 0),
        persistent    INTEGER NOT NULL CHECK (persistent IN (0, 1)),
        created       REAL NOT NULL
    )
    """,
    """
    CREATE TABLE registered_names (
        key           TEXT PRIMARY KEY NOT NULL,
        name          TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created       REAL NOT NULL
    )
    """,
    """
    CREATE TABLE sessions (
        session_id        TEXT PRIMARY KEY NOT NULL,
        peer_id           TEXT NOT NULL,
        name              TEXT,
        lobby_id          TEXT REFERENCES lobbies (id) ON DELETE SET NULL,
        resume_token_hash TEXT NOT NULL UNIQUE,
        kind              TEXT NOT NULL CHECK (kind IN ('user', 'bot')),
        disconnected_at   REAL,
        expires_at        REAL NOT NULL,
        updated           REAL NOT NULL
    )
    """,
    "CREATE INDEX sessions_expires_at ON sessions (expires_at)",
    "CREATE INDEX sessions_lobby_id ON sessions (lobby_id)",
    """
    CREATE TABLE audit (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        ts             REAL NOT NULL,
        event          TEXT NOT NULL,
        peer_id        TEXT,
        name           TEXT,
        remote         TEXT,
        correlation_id TEXT,
        detail         TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX audit_ts ON audit (ts)",
)

#: All migrations in order; position + 1 is the version each one produces.
MIGRATIONS: tuple[Migration, ...] = (_V1,)

#: The schema version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def transaction(fn: Callable[[sqlite3.Connection], _T]) -> Callable[[sqlite3.Connection], _T]:
    """Wrap ``fn`` in ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any exception, commit failure included).

    ``IMMEDIATE`` takes SQLite's write lock up front (waiting up to ``busy_timeout``), so a transaction
    never fails half-way on a lock upgrade.
    """
    def run(conn: sqlite3.Connection) -> _T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return result

    return run


def schema_too_new(current: int, target: int) -> PersistenceError:
    """The error for a database whose schema ``current`` is newer than this code's ``target`` (every backend)."""
    return PersistenceError(
        "the database was written by a newer voicebot version", code="schema_too_new",
        severity=Severity.CRITICAL, retryable=False, subsystem="persistence",
        context={"database_version": current, "supported_version": target},
    )


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing ``migrations`` one transaction each; return the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises :class:`PersistenceError`
    ``schema_too_new`` if the database is newer than ``len(migrations)``; sqlite3 errors propagate
    (the store maps them) after the failed step is rolled back.
    """
    target = len(migrations)

    def step(conn: sqlite3.Connection) -> int | None:
        current = schema_version(conn)
        if current > target:
            raise schema_too_new(current, target)
        if current == target:
            return current
        migrations[current](conn)
        conn.execute(f"PRAGMA user_version = {current + 1:d}")
        return None

    while True:
        done = transaction(step)(conn)
        if done is not None:
            return done
