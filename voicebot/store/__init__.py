"""Durable state for voicebot: lobbies, registered names, resumable sessions and the audit log.

``async with open_store("voicebot.db") as store:`` gives a :class:`SQLiteStore`, which implements the
:class:`Store` protocol (the hub should depend on the protocol only). Every write is committed before
its coroutine returns (write-before-acknowledge); every failure is a
:class:`~voicebot.errors.VoiceBotError` (:class:`~voicebot.errors.PersistenceError` for storage faults).
All writes go through one chokepoint that an optional :class:`Guard` (retry, circuit breaker) wraps.
"""

from ._protocol import Guard, Store, direct
from ._records import AuditEntry, AuditEvent, LobbyRecord, NameRecord, SessionKind, SessionRecord
from ._schema import MIGRATIONS, SCHEMA_VERSION, Migration, migrate, schema_version
from ._sqlite import MAX_AUDIT_PAGE, SQLiteStore, Synchronous, open_store

__all__ = [
    "MAX_AUDIT_PAGE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AuditEntry",
    "AuditEvent",
    "Guard",
    "LobbyRecord",
    "Migration",
    "NameRecord",
    "SQLiteStore",
    "SessionKind",
    "SessionRecord",
    "Store",
    "Synchronous",
    "direct",
    "migrate",
    "open_store",
    "schema_version",
]
