"""Write-before-acknowledge, concurrent writers, error mapping, the guard hook, closing.

Tests taking ``backend``/``backend_store`` run on SQLite and PostgreSQL; the others check SQLite internals.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing
from store_support import Backend, FakeClock, session

from voicebot.errors import AuthError, PersistenceError, VoiceBotError
from voicebot.store import SQLiteStore, SQLStore, Store, open_store

T = TypeVar("T")


async def _hold(lock: trio.Lock, release: trio.Event) -> None:
    async with lock:
        await release.wait()


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read through a brand-new connection: only committed data is visible to it."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_every_write_is_committed_when_it_returns(backend_store: Store, backend: Backend) -> None:
    store = backend_store
    await store.create_lobby("l1", "L", max_members=3, persistent=True)
    assert backend.query("SELECT id, persistent FROM lobbies") == [("l1", 1)]
    await store.register_name("Alice", "h")
    assert backend.query("SELECT key FROM registered_names") == [("alice",)]
    await store.save_session(session(token_hash="th", lobby_id="l1"))
    assert backend.query("SELECT resume_token_hash, lobby_id FROM sessions") == [("th", "l1")]
    audit_id = await store.append_audit("connect", peer_id="p")
    assert backend.query("SELECT id, event FROM audit") == [(audit_id, "connect")]
    await store.delete_lobby("l1")
    assert backend.query("SELECT lobby_id FROM sessions") == [(None,)]
    if isinstance(store, SQLiteStore):
        assert not store._writer.in_transaction  # type: ignore[union-attr]


async def test_concurrent_writers_serialise_and_lose_nothing(backend_store: Store, backend: Backend) -> None:
    store = backend_store

    async def worker(i: int) -> None:
        await store.append_audit("connect", peer_id=str(i))
        await store.register_name(f"user{i}", "h")
        await store.create_lobby(f"l{i}", "L", max_members=2)
        assert await store.get_lobby(f"l{i}") is not None

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(worker, i)
    assert backend.query("SELECT count(*) FROM audit") == [(40,)]
    assert backend.query("SELECT count(*) FROM registered_names") == [(40,)]
    assert backend.query("SELECT count(*) FROM lobbies") == [(40,)]
    ids = [e.id for e in await store.list_audit(limit=100)]
    assert sorted(ids) == list(range(1, 41))


async def test_concurrent_registration_of_one_name(any_store: Store) -> None:
    winners: list[int] = []
    losers: list[str] = []

    async def attempt(i: int) -> None:
        try:
            await any_store.register_name("  SAME name", f"h{i}")
        except AuthError as exc:
            losers.append(exc.code)
        else:
            winners.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(attempt, i)
    assert len(winners) == 1
    assert losers == ["name_taken"] * 19
    record = await any_store.get_name_record("same NAME")
    assert record is not None
    assert record.password_hash == f"h{winners[0]}"


async def test_dropped_table_surfaces_as_persistence_error(store: SQLiteStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TABLE audit")
    with pytest.raises(PersistenceError) as info:
        await store.append_audit("connect")
    assert info.value.code == "database_unavailable"
    assert info.value.context["operation"] == "append_audit"
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(PersistenceError):
        await store.list_audit()
    assert not store._writer.in_transaction  # type: ignore[union-attr]
    await store.create_lobby("l1", "still works", max_members=2)


async def test_locked_database_is_retryable_busy(db_path: Path) -> None:
    async with open_store(db_path, busy_timeout=0.05) as store:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(PersistenceError) as info:
                await store.register_name("Alice", "h")
            assert info.value.code == "database_busy"
            assert info.value.retryable is True
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await store.register_name("Alice", "h")


async def test_not_a_database_is_persistence_error(db_path: Path) -> None:
    await trio.Path(db_path).write_bytes(b"this is not an sqlite file at all" * 100)
    with pytest.raises(PersistenceError) as info:
        await SQLiteStore.open(db_path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_failed_write_rolls_back(backend_store: Store, backend: Backend) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO audit (ts, event) VALUES (1, 'x')")
        raise RuntimeError("bug after the insert")

    assert isinstance(backend_store, SQLStore)
    with pytest.raises(VoiceBotError) as info:
        await backend_store._write("test", half_then_fail)
    assert info.value.code == "internal_error"
    assert backend.query("SELECT count(*) FROM audit") == [(0,)]
    await backend_store.append_audit("connect")  # the connection is usable again (no transaction left open)
    assert backend.query("SELECT count(*) FROM audit") == [(1,)]


async def test_guard_wraps_every_operation(backend: Backend, clock: FakeClock) -> None:
    writes: list[object] = []
    reads: list[object] = []

    def counting(log: list[object]) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
        async def guard(operation: Callable[[], Awaitable[T]]) -> T:
            try:
                result = await operation()
            except BaseException as exc:
                log.append(exc)
                raise
            log.append("ok")
            return result

        return guard

    async with backend.open(now=clock, guard=counting(writes), read_guard=counting(reads)) as store:
        await store.create_lobby("l1", "L", max_members=2)
        await store.delete_lobby("l1")
        await store.register_name("A", "h")
        await store.update_name_password("A", "h2")
        await store.delete_name("A")
        await store.save_session(session())
        await store.delete_session("s1")
        await store.purge_expired()
        await store.append_audit("connect")
        await store.prune_audit(0)
        await store.register_name("B", "h")
        with pytest.raises(AuthError):
            await store.register_name("b", "h")
        assert writes[:10] == ["ok"] * 10
        assert writes[10] == "ok"
        assert isinstance(writes[11], AuthError), "the guard sees project errors, never sqlite3 ones"
        assert len(writes) == 12
        assert reads == []
        await store.get_lobby("x")
        await store.list_lobbies()
        await store.get_name_record("x")
        await store.find_session_by_token_hash("x")
        await store.list_audit()
        assert reads == ["ok"] * 5
        assert len(writes) == 12


async def test_retrying_guard_gets_a_fresh_transaction_per_attempt(db_path: Path) -> None:
    errors: list[str] = []
    blocker = sqlite3.connect(db_path, isolation_level=None)

    async def retry_once(operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except PersistenceError as exc:
            if not exc.retryable:
                raise
            errors.append(exc.code)
            blocker.execute("ROLLBACK")  # the obstacle goes away before the retry
            return await operation()

    try:
        async with open_store(db_path, busy_timeout=0.05, guard=retry_once) as store:
            blocker.execute("BEGIN IMMEDIATE")
            await store.append_audit("connect")
            assert errors == ["database_busy"]
            assert not store._writer.in_transaction  # type: ignore[union-attr]
    finally:
        blocker.close()
    assert _query(db_path, "SELECT count(*) FROM audit") == [(1,)]


async def test_cancelled_write_propagates_cancelled(backend_store: Store, backend: Backend) -> None:
    with trio.move_on_after(0) as scope:
        await backend_store.append_audit("connect")
    assert scope.cancelled_caught
    assert backend.query("SELECT count(*) FROM audit") == [(0,)]


async def test_lock_wait_is_bounded(db_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    async with open_store(db_path, lock_timeout=3.0) as store, trio.open_nursery() as nursery:
        release = trio.Event()
        nursery.start_soon(_hold, store._write_lock, release)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        with pytest.raises(PersistenceError) as info:
            await store.append_audit("connect")
        assert trio.current_time() - start == pytest.approx(3.0)
        release.set()
        assert info.value.code == "database_busy"
        assert info.value.retryable is True
        await store.append_audit("connect")


async def test_closed_store_refuses_and_close_is_idempotent(backend: Backend) -> None:
    async with backend.open() as store:
        await store.append_audit("connect")
        await store.aclose()
    await store.aclose()
    assert getattr(store, "closed", None) is True
    with pytest.raises(PersistenceError) as info:
        await store.append_audit("connect")
    assert info.value.code == "store_closed"
    assert info.value.retryable is False
    with pytest.raises(PersistenceError):
        await store.get_lobby("x")
    # SQLite: WAL checkpointed into the main file on close
    assert backend.query("SELECT count(*) FROM audit") == [(1,)]


async def test_close_is_shielded(backend: Backend) -> None:
    async with backend.open() as store:
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.aclose()
        if isinstance(store, SQLiteStore):
            assert store._writer is None
            assert store._reader is None
        else:
            assert store._pool is None  # type: ignore[attr-defined]
        with pytest.raises(PersistenceError) as info:
            await store.get_lobby("x")
        assert info.value.code == "store_closed"


async def test_close_is_bounded(
    db_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = await SQLiteStore.open(db_path, close_timeout=2.0)
    writer, reader = store._writer, store._reader
    try:
        async with trio.open_nursery() as nursery:
            release = trio.Event()
            nursery.start_soon(_hold, store._write_lock, release)  # an operation that never finishes
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            with caplog.at_level(logging.WARNING, logger="voicebot.store"):
                await store.aclose()
            assert trio.current_time() - start == pytest.approx(3.0)  # close_timeout + 1 s after interrupt
            release.set()
        assert "closing timed out" in caplog.text
        with pytest.raises(PersistenceError):
            await store.append_audit("x")
    finally:
        for conn in (writer, reader):
            if conn is not None:
                conn.close()


async def test_close_waits_for_queued_writes(backend: Backend) -> None:
    async with backend.open() as store, trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(functools.partial(store.append_audit, "connect", peer_id=str(i)))
        await trio.testing.wait_all_tasks_blocked()
        await store.aclose()
    assert backend.query("SELECT count(*) FROM audit") == [(10,)]
