"""Connection setup, transactions and teardown for the SQLite store (synchronous; run in worker threads)."""

from __future__ import annotations

import logging
import sqlite3
from typing import Literal

from ._schema import MIGRATIONS, migrate, transaction

__all__ = ["MEMORY_PATHS", "Synchronous", "close_connections", "open_connections", "transaction"]

_log = logging.getLogger("voicebot.store")

#: Accepted ``synchronous`` settings (``OFF`` would make acknowledged writes losable on a crash).
Synchronous = Literal["NORMAL", "FULL", "EXTRA"]
#: Paths that name a private in-memory/temporary database (a single connection must serve everything).
MEMORY_PATHS = (":memory:", "")


def _connect(path: str, busy_timeout: float, *, reader: bool, synchronous: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
        conn.execute("PRAGMA foreign_keys = ON")
        if reader:
            conn.execute("PRAGMA query_only = ON")
        else:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and path not in MEMORY_PATHS:
                _log.warning("store %s: journal_mode is %s, not wal (readers will block the writer)", path, mode)
            conn.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


def open_connections(
    path: str, busy_timeout: float, synchronous: Synchronous
) -> tuple[sqlite3.Connection, sqlite3.Connection | None]:
    """Open the writer (WAL, ``synchronous``, foreign keys, busy timeout), migrate, then open the reader.

    The reader is None for in-memory databases. Connections are in autocommit mode
    (``isolation_level=None``): transactions are explicit, and ``check_same_thread`` is off because
    Trio's worker threads vary; the store's locks guarantee one thread per connection at a time.
    """
    writer = _connect(path, busy_timeout, reader=False, synchronous=synchronous)
    reader: sqlite3.Connection | None = None
    try:
        migrate(writer, MIGRATIONS)
        if path not in MEMORY_PATHS:
            reader = _connect(path, busy_timeout, reader=True, synchronous=synchronous)
    except BaseException:
        writer.close()
        raise
    return writer, reader


def close_connections(writer: sqlite3.Connection | None, reader: sqlite3.Connection | None) -> None:
    """Run ``PRAGMA optimize`` on the writer, then close both (the last close checkpoints the WAL)."""
    for conn in (reader, writer):
        if conn is None:
            continue
        try:
            if conn is writer:
                conn.execute("PRAGMA optimize")
        except sqlite3.Error as exc:
            _log.warning("PRAGMA optimize failed on close: %s", exc)
        finally:
            conn.close()
