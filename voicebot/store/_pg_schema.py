"""PostgreSQL schema versioning: ordered migrations recorded in the ``voicebot_schema`` table.

Same rules as the SQLite schema (:mod:`._schema`): migration *n* moves version n-1 to n, each in its own
transaction together with its ``voicebot_schema`` row, so a failure leaves the previous version intact
(PostgreSQL's DDL is transactional); a database newer than the code is refused (``schema_too_new``). Every
step first takes a transaction-scoped advisory lock, so several hubs starting at once against one database
(cluster mode) apply each step exactly once and the others wait, then see it done. The tables live in the
connection's ``search_path`` (normally ``public``), so one database can host several schemas.
Append new migrations at the end; never edit released ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ._schema import schema_too_new

__all__ = ["PG_MIGRATIONS", "PgMigration", "migrate", "schema_version"]

#: One migration step: runs its statements on a connection that is inside a transaction.
PgMigration = Callable[["psycopg.Connection[Any]"], None]

#: Key of the advisory lock that serialises migrations (any constant; "voicebot" in ASCII).
_LOCK_KEY = 0x766F696365626F74


def _statements(*sql: bytes) -> PgMigration:
    def apply(conn: psycopg.Connection[Any]) -> None:
        for statement in sql:
            conn.execute(statement)

    return apply


# Types mirror the SQLite schema: epoch seconds as double precision (round-trip exact), booleans as
# boolean, audit detail as json (validated, queryable with ->>, and unlike jsonb it accepts "\u0000").
_V1 = _statements(
    b"""
    CREATE TABLE lobbies (
        id            text PRIMARY KEY,
        name          text NOT NULL,
        private       boolean NOT NULL,
        password_hash text,
        max_members   integer NOT NULL CHECK (max_members > 0),
        persistent    boolean NOT NULL,
        created       double precision NOT NULL
    )
    """,
    b"""
    CREATE TABLE registered_names (
        key           text PRIMARY KEY,
        name          text NOT NULL,
        password_hash text NOT NULL,
        created       double precision NOT NULL
    )
    """,
    b"""
    CREATE TABLE sessions (
        session_id        text PRIMARY KEY,
        peer_id           text NOT NULL,
        name              text,
        lobby_id          text REFERENCES lobbies (id) ON DELETE SET NULL,
        resume_token_hash text NOT NULL UNIQUE,
        kind              text NOT NULL CHECK (kind IN ('user', 'bot')),
        disconnected_at   double precision,
        expires_at        double precision NOT NULL,
        updated           double precision NOT NULL
    )
    """,
    b"CREATE INDEX sessions_expires_at ON sessions (expires_at)",
    b"CREATE INDEX sessions_lobby_id ON sessions (lobby_id)",
    b"""
    CREATE TABLE audit (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts             double precision NOT NULL,
        event          text NOT NULL,
        peer_id        text,
        name           text,
        remote         text,
        correlation_id text,
        detail         json NOT NULL DEFAULT '{}'
    )
    """,
    b"CREATE INDEX audit_ts ON audit (ts)",
)

#: All PostgreSQL migrations in order; position + 1 is the version each one produces. Kept at the same
#: version numbers as the SQLite ones (:data:`voicebot.store.SCHEMA_VERSION`) so one number describes both.
PG_MIGRATIONS: tuple[PgMigration, ...] = (_V1,)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The highest applied version (0 for an empty database)."""
    row = conn.execute(b"SELECT to_regclass('voicebot_schema') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    top = conn.execute(b"SELECT coalesce(max(version), 0) FROM voicebot_schema").fetchone()
    return int(top[0]) if top is not None else 0


def migrate(conn: psycopg.Connection[Any], migrations: Sequence[PgMigration] = PG_MIGRATIONS) -> int:
    """Apply the missing ``migrations`` one transaction each; return the resulting version.

    ``conn`` must be in autocommit mode. Raises :class:`PersistenceError` ``schema_too_new`` if the
    database is newer than ``len(migrations)``; psycopg errors propagate (the store maps them) after the
    failed step is rolled back.
    """
    target = len(migrations)
    while True:
        with conn.transaction():
            conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                b"CREATE TABLE IF NOT EXISTS voicebot_schema ("
                b" version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = schema_version(conn)
            if current > target:
                raise schema_too_new(current, target)
            if current == target:
                return current
            migrations[current](conn)
            conn.execute(b"INSERT INTO voicebot_schema (version) VALUES (%s)", (current + 1,))
