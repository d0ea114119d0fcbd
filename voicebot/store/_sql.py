"""Synchronous SQL shared by the SQLite and PostgreSQL stores; every function runs in a worker thread.

One dialect for both engines: ``?`` placeholders (the PostgreSQL store's connection adapter turns them into
``%s``), ``ON CONFLICT … DO NOTHING`` / ``DO UPDATE`` upserts, ``RETURNING``, booleans bound as Python
``bool`` (SQLite stores 0/1, PostgreSQL a ``boolean``). So both backends run the very same statements and
the shared test-suite checks them on both. Write functions run inside the transaction opened by the store's
write chokepoint; they never commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from voicebot.errors import AuthError, LobbyError

from ._records import AuditEntry, LobbyRecord, NameRecord, SessionRecord


class Cursor(Protocol):
    """What the functions below need from a DB-API cursor."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        ...

    def fetchone(self) -> Any:
        """The next row or None."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...


class Connection(Protocol):
    """A connection executing ``?``-style statements (``sqlite3.Connection`` or the PostgreSQL adapter)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor:
        """Execute one statement."""
        ...


_LOBBY_COLUMNS = "id, name, private, password_hash, max_members, persistent, created"
_SESSION_COLUMNS = "session_id, peer_id, name, lobby_id, resume_token_hash, kind, disconnected_at, expires_at"
#: ``CAST(detail AS TEXT)``: PostgreSQL keeps ``detail`` as ``json``; both engines hand back the text.
_AUDIT_COLUMNS = "id, ts, event, peer_id, name, remote, correlation_id, CAST(detail AS TEXT)"


def _lobby(row: tuple[Any, ...]) -> LobbyRecord:
    return LobbyRecord(
        id=row[0], name=row[1], private=bool(row[2]), password_hash=row[3], max_members=int(row[4]),
        persistent=bool(row[5]), created=float(row[6]),
    )


def _session(row: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(
        session_id=row[0], peer_id=row[1], name=row[2], lobby_id=row[3], resume_token_hash=row[4], kind=row[5],
        disconnected_at=None if row[6] is None else float(row[6]), expires_at=float(row[7]),
    )


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}


def _audit(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        id=int(row[0]), ts=float(row[1]), event=row[2], peer_id=row[3], name=row[4], remote=row[5],
        correlation_id=row[6], detail=_detail(row[7]),
    )


def insert_lobby(conn: Connection, lobby: LobbyRecord) -> LobbyRecord:
    """Insert ``lobby``; LobbyError ``lobby_exists`` if the id is taken."""
    cur = conn.execute(
        f"INSERT INTO lobbies ({_LOBBY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (lobby.id, lobby.name, lobby.private, lobby.password_hash, lobby.max_members, lobby.persistent,
         lobby.created),
    )
    if cur.rowcount != 1:
        raise LobbyError("a lobby with this id already exists", code="lobby_exists", field="lobby_id")
    return lobby


def delete_lobby(conn: Connection, lobby_id: str) -> bool:
    """Delete a lobby by id; sessions in it get ``lobby_id = NULL`` through the foreign key."""
    return conn.execute("DELETE FROM lobbies WHERE id = ?", (lobby_id,)).rowcount > 0


def select_lobby(conn: Connection, lobby_id: str) -> LobbyRecord | None:
    """One lobby or None."""
    row = conn.execute(f"SELECT {_LOBBY_COLUMNS} FROM lobbies WHERE id = ?", (lobby_id,)).fetchone()
    return None if row is None else _lobby(row)


def select_lobbies(conn: Connection, persistent_only: bool) -> list[LobbyRecord]:
    """Lobbies by creation time, optionally only persistent ones."""
    where = "WHERE persistent" if persistent_only else ""
    rows = conn.execute(f"SELECT {_LOBBY_COLUMNS} FROM lobbies {where} ORDER BY created, id").fetchall()
    return [_lobby(row) for row in rows]


def insert_name(conn: Connection, record: NameRecord) -> NameRecord:
    """Register a name; AuthError ``name_taken`` if its key exists."""
    cur = conn.execute(
        "INSERT INTO registered_names (key, name, password_hash, created) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO NOTHING",
        (record.key, record.name, record.password_hash, record.created),
    )
    if cur.rowcount != 1:
        raise AuthError("this name is already registered", code="name_taken", field="name")
    return record


def select_name(conn: Connection, key: str) -> NameRecord | None:
    """The registration with this key, or None."""
    row = conn.execute(
        "SELECT name, key, password_hash, created FROM registered_names WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else NameRecord(name=row[0], key=row[1], password_hash=row[2], created=float(row[3]))


def select_names(conn: Connection) -> list[NameRecord]:
    """Every registered name, oldest first."""
    rows = conn.execute("SELECT name, key, password_hash, created FROM registered_names ORDER BY created, key")
    return [NameRecord(name=r[0], key=r[1], password_hash=r[2], created=float(r[3])) for r in rows.fetchall()]


def select_sessions(conn: Connection, now: float) -> list[SessionRecord]:
    """Every session still resumable at ``now``."""
    rows = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE expires_at > ? ORDER BY updated, session_id", (now,)
    ).fetchall()
    return [_session(row) for row in rows]


def update_name_password(conn: Connection, key: str, password_hash: str) -> bool:
    """Replace the hash of a registration; False if absent."""
    cur = conn.execute("UPDATE registered_names SET password_hash = ? WHERE key = ?", (password_hash, key))
    return cur.rowcount > 0


def delete_name(conn: Connection, key: str) -> bool:
    """Delete a registration; False if absent."""
    return conn.execute("DELETE FROM registered_names WHERE key = ?", (key,)).rowcount > 0


def upsert_session(conn: Connection, session: SessionRecord, updated: float) -> None:
    """Insert or fully replace a session row (keyed by session id)."""
    conn.execute(
        f"INSERT INTO sessions ({_SESSION_COLUMNS}, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (session_id) DO UPDATE SET peer_id = excluded.peer_id, name = excluded.name, "
        "lobby_id = excluded.lobby_id, resume_token_hash = excluded.resume_token_hash, kind = excluded.kind, "
        "disconnected_at = excluded.disconnected_at, expires_at = excluded.expires_at, updated = excluded.updated",
        (session.session_id, session.peer_id, session.name, session.lobby_id, session.resume_token_hash,
         session.kind, session.disconnected_at, session.expires_at, updated),
    )


def select_session_by_token(conn: Connection, token_hash: str, now: float) -> SessionRecord | None:
    """The session with this resume-token hash that has not expired at ``now``."""
    row = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE resume_token_hash = ? AND expires_at > ?",
        (token_hash, now),
    ).fetchone()
    return None if row is None else _session(row)


def delete_session(conn: Connection, session_id: str) -> bool:
    """Delete a session; False if absent."""
    return conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount > 0


def purge_sessions(conn: Connection, now: float) -> int:
    """Delete sessions that expired at or before ``now``."""
    return conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount


def insert_audit(
    conn: Connection, ts: float, event: str, *, peer_id: str | None, name: str | None,
    remote: str | None, correlation_id: str | None, detail: Mapping[str, Any] | None,
) -> int:
    """Append an audit row; returns its id. Non-JSON values in ``detail`` are stored as their ``str()``."""
    text = json.dumps(dict(detail or {}), sort_keys=True, default=str, separators=(",", ":"))
    rows = conn.execute(
        "INSERT INTO audit (ts, event, peer_id, name, remote, correlation_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        (ts, event, peer_id, name, remote, correlation_id, text),
    ).fetchall()  # fetchall: the statement must be finished before COMMIT
    return int(rows[0][0])


def select_audit(conn: Connection, limit: int, before_id: int | None) -> list[AuditEntry]:
    """Newest-first audit rows, optionally only those with ``id < before_id``."""
    if before_id is None:
        rows = conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
        ).fetchall()
    return [_audit(row) for row in rows]


def prune_audit(conn: Connection, before_ts: float) -> int:
    """Delete audit rows with ``ts < before_ts``."""
    return conn.execute("DELETE FROM audit WHERE ts < ?", (before_ts,)).rowcount
