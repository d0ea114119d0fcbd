"""Durable state for voicebot: lobbies, registered names, resumable sessions and the audit log.

``async with open_database(location) as store:`` gives a :class:`PostgresStore` for a ``postgresql://``
URL and a :class:`SQLiteStore` for a file path (``open_store(path)`` opens SQLite directly); both
implement the :class:`Store` protocol (the hub should depend on the protocol only) with the same SQL.
Every write is committed before its coroutine returns (write-before-acknowledge); every failure is a
:class:`~voicebot.errors.VoiceBotError` (:class:`~voicebot.errors.PersistenceError` for storage faults).
All writes go through one chokepoint that an optional :class:`Guard` (retry, circuit breaker) wraps.
"""

from typing import TYPE_CHECKING, Any

from ._api import SQLStore
from ._protocol import Guard, Store, direct
from ._records import AuditEntry, AuditEvent, LobbyRecord, NameRecord, SessionKind, SessionRecord
from ._schema import MIGRATIONS, SCHEMA_VERSION, Migration, migrate, schema_version
from ._select import open_database
from ._sqlite import MAX_AUDIT_PAGE, SQLiteStore, Synchronous, open_store
from ._url import POSTGRES_SCHEMES, is_postgres_url, redact_url

if TYPE_CHECKING:
    from ._pg_schema import PG_MIGRATIONS
    from ._postgres import PostgresStore


def __getattr__(name: str) -> Any:
    # psycopg is imported on first use only (it costs ~0.3 s), so SQLite-only programs never load it.
    if name == "PostgresStore":
        from ._postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore
    if name == "PG_MIGRATIONS":
        from ._pg_schema import PG_MIGRATIONS  # noqa: PLC0415

        return PG_MIGRATIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_AUDIT_PAGE",
    "MIGRATIONS",
    "PG_MIGRATIONS",
    "POSTGRES_SCHEMES",
    "SCHEMA_VERSION",
    "AuditEntry",
    "AuditEvent",
    "Guard",
    "LobbyRecord",
    "Migration",
    "NameRecord",
    "PostgresStore",
    "SQLStore",
    "SQLiteStore",
    "SessionKind",
    "SessionRecord",
    "Store",
    "Synchronous",
    "direct",
    "is_postgres_url",
    "migrate",
    "open_database",
    "open_store",
    "redact_url",
    "schema_version",
]
