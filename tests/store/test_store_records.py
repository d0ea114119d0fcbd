"""Lobbies and registered names: every API, validation and error codes (file and in-memory stores)."""

from __future__ import annotations

import pytest
from store_support import FakeClock

from voicebot.errors import AuthError, LobbyError, ValidationError
from voicebot.store import LobbyRecord, NameRecord, SQLiteStore


async def test_create_get_list_delete_lobby(any_store: SQLiteStore, clock: FakeClock) -> None:
    created = await any_store.create_lobby(
        "l1", "Main", max_members=8, private=True, password_hash="$argon2id$x", persistent=True
    )
    assert created == LobbyRecord(
        id="l1", name="Main", private=True, password_hash="$argon2id$x", max_members=8, persistent=True,
        created=clock.t,
    )
    clock.advance(5)
    await any_store.create_lobby("l2", "Scratch", max_members=2)
    assert await any_store.get_lobby("l1") == created
    assert await any_store.get_lobby("nope") is None
    assert [lobby.id for lobby in await any_store.list_lobbies()] == ["l1"]
    all_lobbies = await any_store.list_lobbies(persistent_only=False)
    assert [(lobby.id, lobby.private, lobby.persistent) for lobby in all_lobbies] == [
        ("l1", True, True), ("l2", False, False),
    ]
    assert all_lobbies[1].password_hash is None
    assert await any_store.delete_lobby("l1") is True
    assert await any_store.delete_lobby("l1") is False
    assert await any_store.get_lobby("l1") is None


async def test_duplicate_lobby_id(any_store: SQLiteStore) -> None:
    await any_store.create_lobby("l1", "A", max_members=2)
    with pytest.raises(LobbyError) as info:
        await any_store.create_lobby("l1", "B", max_members=3)
    assert info.value.code == "lobby_exists"
    assert (await any_store.get_lobby("l1")) is not None
    assert (await any_store.get_lobby("l1")).name == "A"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("lobby_id", "name", "max_members", "field"),
    [("", "A", 2, "lobby_id"), ("  ", "A", 2, "lobby_id"), ("l", "", 2, "name"), ("l", "A", 0, "max_members")],
)
async def test_lobby_validation(any_store: SQLiteStore, lobby_id: str, name: str, max_members: int, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        await any_store.create_lobby(lobby_id, name, max_members=max_members)
    assert info.value.field == field
    assert await any_store.list_lobbies(persistent_only=False) == []


async def test_register_and_get_name_case_insensitive(any_store: SQLiteStore, clock: FakeClock) -> None:
    record = await any_store.register_name("  Alice ", "$argon2id$hash")
    assert record == NameRecord(name="Alice", key="alice", password_hash="$argon2id$hash", created=clock.t)
    assert await any_store.get_name_record("ALICE") == record
    assert await any_store.get_name_record(" alice") == record
    assert await any_store.get_name_record("bob") is None
    assert await any_store.get_name_record("   ") is None


async def test_register_taken_name(any_store: SQLiteStore) -> None:
    await any_store.register_name("Alice", "h1")
    with pytest.raises(AuthError) as info:
        await any_store.register_name("aLiCe  ", "h2")
    assert info.value.code == "name_taken"
    assert info.value.retryable is False
    assert (await any_store.get_name_record("alice")).password_hash == "h1"  # type: ignore[union-attr]


async def test_register_name_casefold_not_just_lower(any_store: SQLiteStore) -> None:
    await any_store.register_name("Straße", "h1")
    with pytest.raises(AuthError):
        await any_store.register_name("STRASSE", "h2")


async def test_register_validation(any_store: SQLiteStore) -> None:
    with pytest.raises(ValidationError) as info:
        await any_store.register_name("   ", "h")
    assert info.value.field == "name"
    with pytest.raises(ValidationError) as info:
        await any_store.register_name("Bob", "")
    assert info.value.field == "password_hash"


async def test_update_and_delete_name(any_store: SQLiteStore) -> None:
    assert await any_store.update_name_password("Alice", "h2") is False
    await any_store.register_name("Alice", "h1")
    assert await any_store.update_name_password("ALICE", "h2") is True
    assert (await any_store.get_name_record("alice")).password_hash == "h2"  # type: ignore[union-attr]
    assert await any_store.delete_name("alice") is True
    assert await any_store.delete_name("alice") is False
    assert await any_store.get_name_record("Alice") is None
    await any_store.register_name("alice", "h3")  # free again
