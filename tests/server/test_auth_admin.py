"""Protected names, login throttling, the admin token and admin requests, audit log (autojump clock)."""

from __future__ import annotations

import pytest
import trio

from voicebot.client import RemoteError
from voicebot.server import Server
from voicebot.testing import open_client, open_test_server, settings_for_tests

ADMIN = "test-admin-token"


@pytest.fixture
async def admin_server() -> object:
    async with open_test_server(settings_for_tests(admin_token=ADMIN)) as srv:
        yield srv


async def test_registered_name_needs_its_password(admin_server: Server, autojump_clock: object) -> None:
    server = admin_server
    async with open_client(server, "Alice") as a:
        with pytest.raises(RemoteError) as info:
            await a.request("name.register", password="short")
        assert (info.value.code, info.value.field) == ("invalid_message", "password")
        reply = await a.request("name.register", password="correct horse")
        assert reply == {"type": "name.registered", "name": "Alice", "reply_to": reply["reply_to"]}
        with pytest.raises(RemoteError) as info:
            await a.request("name.register", password="another one")
        assert info.value.code == "name_taken"
        token = a.resume_token
    async with open_client(server) as c:
        with pytest.raises(RemoteError) as info:  # missing password (names are case-insensitive)
            await c.hello("alice")
        assert (info.value.code, info.value.category, info.value.field) == ("auth_failed", "auth", "password")
        with pytest.raises(RemoteError) as info:  # wrong password
            await c.hello("ALICE", password="wrong password")
        assert (info.value.code, info.value.field) == ("auth_failed", "password")
        assert (await c.hello("Alice", password="correct horse"))["name"] == "Alice"
    async with open_client(server) as r:  # a resume token proves identity by itself
        assert (await r.hello("Alice", resume=token))["resumed"] is True
    async with open_client(server) as other:
        assert (await other.hello("Bob"))["name"] == "Bob"  # unregistered names need nothing


async def test_login_throttle(admin_server: Server, autojump_clock: object) -> None:
    server = admin_server
    async with open_client(server, "carol") as a:
        await a.request("name.register", password="carol's secret")
    async with open_client(server) as c:
        for _ in range(5):
            with pytest.raises(RemoteError) as info:
                await c.hello("carol", password="guess-guess")
            assert info.value.code == "auth_failed"
        with pytest.raises(RemoteError) as info:
            await c.hello("carol", password="carol's secret")  # even the right password waits out the lockout
        assert (info.value.code, info.value.retryable) == ("login_throttled", True)
        assert info.value.retry_after is not None and info.value.retry_after > 0
        wait = info.value.retry_after
    await trio.sleep(wait + 1)
    async with open_client(server) as c2:
        assert (await c2.hello("carol", password="carol's secret"))["name"] == "carol"


async def test_admin_requires_token(admin_server: Server, autojump_clock: object) -> None:
    server = admin_server
    async with open_client(server, "user") as u:
        for request, fields in [("admin.stats", {}), ("admin.kick", {"peer_id": "p_x"}),
                                ("admin.close_lobby", {"lobby_id": "l_x"}), ("admin.audit", {"limit": 5})]:
            with pytest.raises(RemoteError) as info:
                await u.request(request, **fields)
            assert (info.value.code, info.value.category) == ("forbidden", "auth"), request
    async with open_client(server) as c:
        with pytest.raises(RemoteError) as info:
            await c.hello("mallory", admin_token="not-it")
        assert (info.value.code, info.value.field) == ("auth_failed", "admin_token")


async def test_admin_actions_and_audit(admin_server: Server, autojump_clock: object) -> None:
    server = admin_server
    async with open_client(server, "root", admin_token=ADMIN) as admin, open_client(server, "u1") as u1, \
            open_client(server, "u2") as u2:
        assert admin.welcome["admin"] is True
        room = await u1.create_lobby("room")
        await u1.join(room["id"])
        await u2.join(room["id"])
        stats = (await admin.request("admin.stats"))["stats"]
        assert stats["sessions"] == 3 and stats["lobbies"] == 1 and "breakers" in stats and "persistence" in stats
        assert (await admin.request("admin.kick", peer_id=u2.peer_id))["peer_id"] == u2.peer_id
        left = await u1.next_event("peer.left")
        assert (left["peer_id"], left["reason"]) == (u2.peer_id, "kicked")
        assert (await u2.next_event("lobby.left"))["reason"] == "kicked"
        reason = await u2.wait_closed(timeout=5)
        assert reason is not None and reason.code == 4004
        with pytest.raises(RemoteError) as info:
            await admin.request("admin.kick", peer_id="p_nobody")
        assert info.value.code == "peer_not_found"
        await admin.request("admin.close_lobby", lobby_id=room["id"])
        assert (await u1.next_event("lobby.left"))["reason"] == "closed"
        assert room["id"] not in server.hub.lobbies
        await trio.sleep(1)  # audit rows are written by the background job queue
        entries = (await admin.request("admin.audit", limit=50))["entries"]
        events = [e["event"] for e in entries]
        assert {"connect", "join", "admin_action", "disconnect"} <= set(events)
        kick = next(e for e in entries if e["event"] == "admin_action" and e["detail"]["action"] == "admin.kick")
        assert kick["name"] == "root" and kick["correlation_id"] and kick["remote"] == "memory"
        assert entries == sorted(entries, key=lambda e: -e["id"])  # newest first
        assert len((await admin.request("admin.audit", limit=2))["entries"]) == 2
