"""``admin.kick`` and ``admin.close_lobby`` reach peers and lobbies on any hub (real hubs, Redis, PostgreSQL)."""

from __future__ import annotations

import pytest

from voicebot.client import RemoteError, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import hubs

pytestmark = pytest.mark.slow


async def test_kick_and_close_lobby_across_hubs(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server) as (one, two):
        async with connect(one) as admin, connect(two) as admin2, connect(one) as ada, connect(two) as bob, \
                connect(two) as cy:
            await admin.hello("Root", admin_token="cluster-admin")
            await admin2.hello("Root2", admin_token="cluster-admin")
            for client, name in ((ada, "Ada"), (bob, "Bob"), (cy, "Cy")):
                await client.hello(name)
            lobby = await ada.create_lobby("watched")
            for client in (ada, bob, cy):
                await client.join(lobby["id"])

            reply = await admin.request("admin.kick", peer_id=bob.peer_id)  # Bob's socket is on hub two
            assert reply == {"type": "admin.kicked", "peer_id": bob.peer_id, "reply_to": reply["reply_to"]}
            left = await bob.next_event("lobby.left")
            assert (left["lobby_id"], left["reason"]) == (lobby["id"], "kicked")
            closed = await bob.wait_closed(timeout=10)
            assert closed is not None and closed.code == 4004
            for other in (ada, cy):
                left = await other.next_event("peer.left")
                assert (left["peer_id"], left["reason"]) == (bob.peer_id, "kicked")
            async with connect(one) as again:  # the kicked session cannot be resumed on any hub
                assert (await again.hello("Bob", resume=bob.resume_token))["resumed"] is False
            with pytest.raises(RemoteError) as info:
                await admin.request("admin.kick", peer_id="p_000000000000000000000000")
            assert info.value.code == "peer_not_found"

            # hub two has Cy in the lobby; the admin on hub two closes it for Ada on hub one too
            reply = await admin2.request("admin.close_lobby", lobby_id=lobby["id"])
            assert reply["type"] == "admin.lobby_closed"
            for member in (ada, cy):
                left = await member.next_event("lobby.left")
                assert (left["lobby_id"], left["reason"]) == (lobby["id"], "closed")
            assert await cy.list_lobbies() == []
            for client in (ada, cy):
                with pytest.raises(RemoteError) as info:
                    await client.join(lobby["id"])
                assert info.value.code == "lobby_not_found"
            with pytest.raises(RemoteError) as info:
                await admin.request("admin.close_lobby", lobby_id=lobby["id"])
            assert info.value.code == "lobby_not_found"
            assert (await ada.request("lobby.list"))["lobbies"] == []
