"""``open_database(location)``: PostgreSQL for a ``postgresql://`` URL, SQLite for anything else."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from ._protocol import Guard, Store
from ._sqlite import SQLiteStore
from ._url import is_postgres_url

__all__ = ["open_database"]


@contextlib.asynccontextmanager
async def open_database(
    location: str, *, now: Callable[[], float] = time.time, guard: Guard | None = None,
    read_guard: Guard | None = None,
) -> AsyncIterator[Store]:
    """``async with open_database("postgresql://u:p@host/db") as store:`` — open, yield, close (shielded).

    ``postgresql://`` and ``postgres://`` URLs open a :class:`~voicebot.store.PostgresStore` (psycopg is
    imported only then); anything else is an SQLite path (``:memory:`` keeps nothing), the embedded
    default for a single hub. Errors are PersistenceErrors; the password never appears in them.
    """
    store: Store
    if is_postgres_url(location):
        from ._postgres import PostgresStore  # noqa: PLC0415 - psycopg costs ~0.3 s to import; SQLite users skip it

        store = await PostgresStore.open(location, now=now, guard=guard, read_guard=read_guard)
    else:
        store = await SQLiteStore.open(location, now=now, guard=guard, read_guard=read_guard)
    try:
        yield store
    finally:
        await store.aclose()
