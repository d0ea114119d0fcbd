"""PostgreSQL specifics: migrations, concurrent start-up, error mapping, deadlines, password redaction."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg_pool
import pytest
import trio
from store_support import Backend

from voicebot.errors import PersistenceError, Severity, map_exception
from voicebot.store import PG_MIGRATIONS, SCHEMA_VERSION, PostgresStore, is_postgres_url, redact_url
from voicebot.testing import PostgresEngine, free_port

EXPECTED_TABLES = {"lobbies", "registered_names", "sessions", "audit", "voicebot_schema"}


@pytest.fixture
def pg(postgres_server: PostgresEngine) -> Backend:
    return Backend("postgresql", postgres_server.new_schema())


def _schema(backend: Backend) -> str:
    return str(backend.query("SELECT current_schema()")[0][0])


async def test_migrates_empty_database_and_reopens(pg: Backend) -> None:
    async with pg.open() as store:
        await store.create_lobby("l1", "Lobby", max_members=4, persistent=True)
    schema = _schema(pg)
    tables = {r[0] for r in pg.query(f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")}
    assert tables == EXPECTED_TABLES
    assert pg.query("SELECT version FROM voicebot_schema") == [(1,)]
    assert len(PG_MIGRATIONS) == SCHEMA_VERSION
    for _ in range(2):
        async with pg.open() as store:
            assert [lobby.id for lobby in await store.list_lobbies()] == ["l1"]
    assert pg.query("SELECT max(version) FROM voicebot_schema") == [(SCHEMA_VERSION,)]


async def test_refuses_newer_schema(pg: Backend) -> None:
    async with pg.open():
        pass
    pg.query(f"INSERT INTO voicebot_schema (version) VALUES ({SCHEMA_VERSION + 1}) RETURNING version")
    with pytest.raises(PersistenceError) as info:
        await PostgresStore.open(pg.location)
    err = info.value
    assert (err.code, err.retryable, err.severity) == ("schema_too_new", False, Severity.CRITICAL)
    assert err.context["database_version"] == SCHEMA_VERSION + 1
    assert "***" in err.context["database"]


async def test_hubs_starting_together_migrate_once(pg: Backend) -> None:
    stores: list[Any] = []

    async def start() -> None:
        stores.append(await PostgresStore.open(pg.location))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(start)
    for store in stores:
        await store.aclose()
    assert pg.query("SELECT version FROM voicebot_schema ORDER BY version") == [(1,)]


async def test_failed_migration_rolls_back(pg: Backend) -> None:
    from voicebot.store._pg_schema import migrate  # noqa: PLC0415 - white-box

    def broken(conn: psycopg.Connection[Any]) -> None:
        conn.execute(b"CREATE TABLE half (x int)")
        raise psycopg.errors.SyntaxError("boom")

    with psycopg.connect(pg.location, autocommit=True) as conn:
        assert migrate(conn) == SCHEMA_VERSION
        with pytest.raises(psycopg.errors.SyntaxError):
            migrate(conn, [*PG_MIGRATIONS, broken])
        assert conn.execute(b"SELECT to_regclass('half')").fetchone() == (None,)
        assert conn.execute(b"SELECT max(version) FROM voicebot_schema").fetchone() == (SCHEMA_VERSION,)


async def test_connection_settings(pg: Backend) -> None:
    async with pg.open(statement_timeout=3.5) as store:
        assert isinstance(store, PostgresStore)
        pool = store._pool
        assert pool is not None
        with pool.connection() as conn:
            assert conn.autocommit
            assert conn.execute(b"SHOW statement_timeout").fetchone() == ("3500ms",)
            assert conn.execute(b"SHOW application_name").fetchone() == ("voicebot",)


async def test_statement_timeout_is_retryable_busy(pg: Backend) -> None:
    async with pg.open(statement_timeout=0.3) as store:
        await store.create_lobby("l1", "L", max_members=2)
        with psycopg.connect(pg.location) as blocker:  # holds a row lock in an open transaction
            blocker.execute(b"SELECT * FROM lobbies WHERE id = 'l1' FOR UPDATE")
            with pytest.raises(PersistenceError) as info:
                await store.delete_lobby("l1")
            assert (info.value.code, info.value.retryable) == ("database_busy", True)
            assert isinstance(info.value.__cause__, psycopg.errors.QueryCanceled)
        assert await store.delete_lobby("l1") is True  # nothing was deleted by the failed attempt


async def test_unreachable_server_is_unavailable_and_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://voicebot:Sup3rSecret@127.0.0.1:{free_port()}/voicebot"
    with caplog.at_level(logging.DEBUG), pytest.raises(PersistenceError) as info:
        await PostgresStore.open(url, connect_timeout=1.0)
    assert (info.value.code, info.value.retryable) == ("database_unavailable", True)
    assert info.value.context["database"] == f"postgresql://voicebot:***@127.0.0.1:{url.split(':')[3]}"
    text = repr(info.value) + str(info.value.context) + caplog.text
    assert "Sup3rSecret" not in text


async def test_wrong_password_is_refused_without_leaking_it(postgres_server: PostgresEngine) -> None:
    url = postgres_server.url().replace(postgres_server.password, "WrongPassw0rd")
    with pytest.raises(PersistenceError) as info:
        await PostgresStore.open(url, connect_timeout=2.0)
    assert info.value.code == "database_unavailable"
    assert "WrongPassw0rd" not in repr(info.value) + str(info.value.context)


async def test_server_restart_is_survived(postgres_server: PostgresEngine, pg: Backend) -> None:
    async with pg.open() as store:
        await store.register_name("Alice", "h")
        # every pooled connection dies as if the server restarted; the pool's checkout check replaces them
        postgres_server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'voicebot' AND pid <> pg_backend_pid()")
        assert (await store.get_name_record("alice")) is not None
        await store.register_name("Bob", "h")


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgres://u@h/db?password=x&sslmode=require") == "postgres://u@h/db?password=***&sslmode=require"
    assert redact_url("voicebot.db") == "voicebot.db"
    assert is_postgres_url("PostgreSQL://h/db") and is_postgres_url("postgres://h")
    assert not is_postgres_url(":memory:") and not is_postgres_url("/var/lib/voicebot.db")


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (psycopg.errors.SerializationFailure("x"), "database_busy", True),
        (psycopg.errors.DeadlockDetected("x"), "database_busy", True),
        (psycopg.errors.LockNotAvailable("x"), "database_busy", True),
        (psycopg.errors.QueryCanceled("x"), "database_busy", True),
        (psycopg.errors.AdminShutdown("x"), "database_unavailable", True),
        (psycopg.errors.CannotConnectNow("x"), "database_unavailable", True),
        (psycopg.errors.TooManyConnections("x"), "database_unavailable", True),
        (psycopg.errors.DiskFull("x"), "database_unavailable", True),
        (psycopg.OperationalError("connection refused"), "database_unavailable", True),
        (psycopg_pool.PoolTimeout("x"), "database_unavailable", True),
        (psycopg_pool.PoolClosed("x"), "store_closed", False),
        (psycopg.errors.UniqueViolation("x"), "constraint_violation", False),
        (psycopg.errors.ForeignKeyViolation("x"), "constraint_violation", False),
        (psycopg.DataError("NUL"), "constraint_violation", False),
        (psycopg.errors.DataCorrupted("x"), "database_corrupt", False),
        (psycopg.errors.UndefinedTable("x"), "database_error", False),
        (psycopg.InterfaceError("x"), "database_error", False),
    ],
)
def test_psycopg_errors_are_classified(exc: Exception, code: str, retryable: bool) -> None:
    mapped = map_exception(exc)
    assert isinstance(mapped, PersistenceError)
    assert (mapped.code, mapped.retryable) == (code, retryable)
    assert mapped.__cause__ is exc


async def test_nul_character_is_a_persistence_error_not_a_crash(pg: Backend) -> None:
    async with pg.open() as store:
        with pytest.raises(PersistenceError) as info:
            await store.append_audit("connect", name="a\x00b")
        assert info.value.code == "constraint_violation"
        await store.append_audit("connect", detail={"x": "a\x00b"})  # escaped as \\u0000 inside json: fine
        assert (await store.list_audit())[0].detail == {"x": "a\x00b"}


async def test_fault_points_are_the_sqlite_ones(pg: Backend) -> None:
    """Plans written for SQLite hit PostgreSQL at the same points; psycopg errors may be injected by name."""
    from voicebot import faults  # noqa: PLC0415

    plan = faults.Plan(rules=[
        faults.Rule(point="store.write", at=1,
                    fault=faults.raises(faults.resolve_exception("psycopg.errors.SerializationFailure"), "x")),
        faults.Rule(point="store.read", at=1, fault=faults.raises(psycopg.OperationalError, "server gone")),
    ])
    attempts: list[str] = []

    async def retry_once(operation: Any) -> Any:
        try:
            return await operation()
        except PersistenceError as exc:
            attempts.append(exc.code)
            if not exc.retryable:
                raise
            return await operation()

    async with pg.open(guard=retry_once) as store:
        with faults.activate(plan, seed=1) as run:
            await store.create_lobby("l1", "L", max_members=2)  # first attempt injected, retried by the guard
            assert await store.get_lobby("l1") is not None
        assert attempts == ["database_busy", "database_unavailable"]
        assert run.stats()  # both points recorded in the run
    assert pg.query("SELECT id FROM lobbies") == [("l1",)]


async def test_outage_fails_fast_and_recovers() -> None:
    """PostgreSQL stopped under a running store: calls fail (retryable, bounded) and work again once it is back."""
    from voicebot.testing import run_postgres  # noqa: PLC0415

    with run_postgres() as engine:
        url = await trio.to_thread.run_sync(engine.new_database, "outage")
        async with await PostgresStore.open(url, acquire_timeout=2.0, connect_timeout=1.0) as store:
            await store.create_lobby("before", "L", max_members=2, persistent=True)
            await trio.to_thread.run_sync(engine.stop)
            start = trio.current_time()
            with pytest.raises(PersistenceError) as info:
                await store.create_lobby("during", "L", max_members=2)
            assert info.value.code in ("database_unavailable", "database_busy")
            assert info.value.retryable is True
            assert trio.current_time() - start < 10
            await trio.to_thread.run_sync(engine.start)
            with trio.fail_after(30):
                while True:  # the pool reconnects in the background with backoff
                    try:
                        await store.create_lobby("after", "L", max_members=2, persistent=True)
                        break
                    except PersistenceError as exc:
                        if not exc.retryable:
                            raise
                        await trio.sleep(0.5)
            assert [lobby.id for lobby in await store.list_lobbies()] == ["before", "after"]
