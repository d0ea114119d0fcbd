"""Schema creation, migrations, version refusal and connection settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voicebot.errors import PersistenceError, Severity
from voicebot.store import MIGRATIONS, SCHEMA_VERSION, Migration, SQLiteStore, migrate, open_store, schema_version

EXPECTED_TABLES = {"lobbies", "registered_names", "sessions", "audit"}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows} - {"sqlite_sequence"}


async def test_migrates_empty_database(db_path: Path) -> None:
    async with open_store(db_path):
        pass
    assert _tables(db_path) == EXPECTED_TABLES
    conn = sqlite3.connect(db_path)
    try:
        assert schema_version(conn) == SCHEMA_VERSION == len(MIGRATIONS) >= 1
    finally:
        conn.close()


async def test_reopen_is_idempotent_and_keeps_data(db_path: Path) -> None:
    async with open_store(db_path) as store:
        await store.create_lobby("l1", "Lobby", max_members=4, persistent=True)
    for _ in range(2):
        async with open_store(db_path) as store:
            assert [lobby.id for lobby in await store.list_lobbies()] == ["l1"]
    conn = sqlite3.connect(db_path)
    try:
        assert schema_version(conn) == SCHEMA_VERSION
    finally:
        conn.close()


async def test_refuses_newer_schema(db_path: Path) -> None:
    async with open_store(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(PersistenceError) as info:
        await SQLiteStore.open(db_path)
    err = info.value
    assert err.code == "schema_too_new"
    assert err.retryable is False
    assert err.severity is Severity.CRITICAL
    assert err.context["database_version"] == SCHEMA_VERSION + 1
    assert err.context["supported_version"] == SCHEMA_VERSION


def test_migrations_apply_in_order_one_transaction_each() -> None:
    applied: list[int] = []

    def step(n: int) -> Migration:
        def apply(conn: sqlite3.Connection) -> None:
            assert conn.in_transaction
            assert schema_version(conn) == n - 1
            conn.execute(f"CREATE TABLE t{n} (x)")
            applied.append(n)

        return apply

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE t3 (x)")
        raise sqlite3.OperationalError("boom")

    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        steps: list[Migration] = [step(1), step(2)]
        assert migrate(conn, steps) == 2
        assert applied == [1, 2]
        assert migrate(conn, steps) == 2
        assert applied == [1, 2], "re-running applies nothing"
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, [*steps, broken])
        # the failed step rolled back completely: version and table unchanged
        assert schema_version(conn) == 2
        assert not conn.in_transaction
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert names == {"t1", "t2"}
    finally:
        conn.close()


async def test_connection_settings(db_path: Path) -> None:
    async with open_store(db_path) as store:
        writer = store._writer  # white-box: the pragmas are the contract of this module
        reader = store._reader
        assert writer is not None
        assert reader is not None
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert reader.execute("PRAGMA query_only").fetchone()[0] == 1


async def test_synchronous_can_be_chosen_but_not_off(db_path: Path) -> None:
    async with open_store(db_path, synchronous="NORMAL") as store:
        assert store._writer is not None
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(ValueError, match="synchronous"):
        await SQLiteStore.open(db_path, synchronous="OFF")  # type: ignore[arg-type]


async def test_memory_store_has_single_connection() -> None:
    async with open_store(":memory:") as store:
        assert store._reader is None
        await store.create_lobby("l1", "Lobby", max_members=2, persistent=True)
        assert (await store.get_lobby("l1")) is not None


async def test_unopenable_path_is_persistence_error(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError) as info:
        await SQLiteStore.open(tmp_path / "missing-dir" / "x.db")
    assert info.value.code == "database_unavailable"
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
