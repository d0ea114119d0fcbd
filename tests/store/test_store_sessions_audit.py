"""Sessions (upsert, lookup by token hash, expiry, FK to lobbies) and the audit log."""

from __future__ import annotations

import pytest
from store_support import FakeClock, session

from voicebot.auth import new_token, token_hash
from voicebot.errors import PersistenceError, ValidationError
from voicebot.store import MAX_AUDIT_PAGE, AuditEvent, SessionRecord, SQLiteStore

T0 = 1_700_000_000.0


async def test_save_and_find_session(any_store: SQLiteStore) -> None:
    token = new_token()
    record = session(token_hash=token_hash(token), disconnected_at=T0 - 1, expires_at=T0 + 60)
    await any_store.save_session(record)
    assert await any_store.find_session_by_token_hash(token_hash(token)) == record
    assert await any_store.find_session_by_token_hash(token_hash(new_token())) is None


async def test_save_session_upserts(any_store: SQLiteStore) -> None:
    await any_store.save_session(session("s1", token_hash="old", expires_at=T0 + 10))
    await any_store.create_lobby("l1", "L", max_members=2)
    updated = session("s1", token_hash="new", lobby_id="l1", expires_at=T0 + 99, kind="bot")
    await any_store.save_session(updated)
    assert await any_store.find_session_by_token_hash("old") is None
    assert await any_store.find_session_by_token_hash("new") == updated


async def test_expired_session_is_not_found(any_store: SQLiteStore, clock: FakeClock) -> None:
    await any_store.save_session(session(token_hash="h", expires_at=T0 + 10))
    assert await any_store.find_session_by_token_hash("h", now=T0 + 9.5) is not None
    assert await any_store.find_session_by_token_hash("h", now=T0 + 10) is None
    clock.advance(10)
    assert await any_store.find_session_by_token_hash("h") is None


async def test_delete_and_purge_sessions(any_store: SQLiteStore, clock: FakeClock) -> None:
    await any_store.save_session(session("a", token_hash="ha", expires_at=T0 + 10))
    await any_store.save_session(session("b", token_hash="hb", expires_at=T0 + 20))
    await any_store.save_session(session("c", token_hash="hc", expires_at=T0 + 30))
    assert await any_store.delete_session("c") is True
    assert await any_store.delete_session("c") is False
    assert await any_store.purge_expired(T0 + 5) == 0
    assert await any_store.purge_expired(T0 + 10) == 1  # expires_at <= now
    clock.advance(25)
    assert await any_store.purge_expired() == 1
    assert await any_store.find_session_by_token_hash("hb", now=T0) is None


async def test_lobby_delete_sets_session_lobby_null(any_store: SQLiteStore) -> None:
    await any_store.create_lobby("l1", "L", max_members=2)
    await any_store.save_session(session("s1", token_hash="h", lobby_id="l1", expires_at=T0 + 60))
    await any_store.delete_lobby("l1")
    found = await any_store.find_session_by_token_hash("h")
    assert found is not None
    assert found.lobby_id is None


async def test_session_with_unknown_lobby_violates_fk(any_store: SQLiteStore) -> None:
    with pytest.raises(PersistenceError) as info:
        await any_store.save_session(session(lobby_id="ghost"))
    assert info.value.code == "constraint_violation"
    assert info.value.retryable is False
    assert await any_store.find_session_by_token_hash("h1", now=T0) is None


async def test_duplicate_token_hash_is_constraint_violation(any_store: SQLiteStore) -> None:
    await any_store.save_session(session("a", token_hash="same"))
    with pytest.raises(PersistenceError) as info:
        await any_store.save_session(session("b", token_hash="same"))
    assert info.value.code == "constraint_violation"


def test_session_kind_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        session(kind="robot")  # type: ignore[arg-type]


async def test_session_validation(any_store: SQLiteStore) -> None:
    with pytest.raises(ValidationError):
        await any_store.save_session(session(token_hash=""))


async def test_append_and_list_audit(any_store: SQLiteStore, clock: FakeClock) -> None:
    first = await any_store.append_audit(
        AuditEvent.CONNECT, peer_id="p1", remote="10.0.0.1", correlation_id="c1", detail={"ua": "test"}
    )
    clock.advance(1)
    second = await any_store.append_audit("join", peer_id="p1", name="Alice", detail={"lobby": "l1"})
    clock.advance(1)
    third = await any_store.append_audit(AuditEvent.AUTH_FAILED, name="Bob", detail={"obj": object.__name__})
    assert first < second < third
    entries = await any_store.list_audit()
    assert [e.id for e in entries] == [third, second, first]
    newest = entries[0]
    assert (newest.event, newest.name, newest.ts) == ("auth_failed", "Bob", T0 + 2)
    oldest = entries[-1]
    assert (oldest.event, oldest.peer_id, oldest.remote, oldest.correlation_id, oldest.detail) == (
        "connect", "p1", "10.0.0.1", "c1", {"ua": "test"},
    )
    assert entries[1].detail == {"lobby": "l1"}
    assert [e.id for e in await any_store.list_audit(limit=1)] == [third]
    assert [e.id for e in await any_store.list_audit(limit=10, before_id=third)] == [second, first]
    assert await any_store.list_audit(before_id=first) == []


async def test_audit_detail_defaults_and_non_json_values(any_store: SQLiteStore) -> None:
    await any_store.append_audit("admin_action")
    await any_store.append_audit("admin_action", detail={"when": SessionRecord, "n": 1})
    newest, oldest = await any_store.list_audit()
    assert oldest.detail == {}
    assert newest.detail["n"] == 1
    assert "SessionRecord" in newest.detail["when"]


async def test_audit_paging_and_validation(any_store: SQLiteStore) -> None:
    for i in range(5):
        await any_store.append_audit("connect", peer_id=str(i))
    page = await any_store.list_audit(limit=2)
    rest = await any_store.list_audit(limit=10, before_id=page[-1].id)
    assert [e.peer_id for e in page + rest] == ["4", "3", "2", "1", "0"]
    assert len(await any_store.list_audit(limit=MAX_AUDIT_PAGE + 50)) == 5
    with pytest.raises(ValidationError):
        await any_store.list_audit(limit=0)
    with pytest.raises(ValidationError):
        await any_store.append_audit("")


async def test_prune_audit(any_store: SQLiteStore, clock: FakeClock) -> None:
    await any_store.append_audit("connect")
    clock.advance(100)
    await any_store.append_audit("disconnect")
    assert await any_store.prune_audit(T0 + 50) == 1
    assert [e.event for e in await any_store.list_audit()] == ["disconnect"]
