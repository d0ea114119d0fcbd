"""``admin.kick`` and ``admin.close_lobby`` reach peers and lobbies on any hub (real hubs, Redis, PostgreSQL).

A kicked client that tries to resume on another hub the moment it hears of the kick gets a new session: its hub
forgets the stored session in Redis before telling anyone, even with a backlog of forwards queued before it.
"""

from __future__ import annotations

import pytest
import trio

from voicebot.client import RemoteError, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import UNLIMITED, chatter, drain, hubs

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


@pytest.mark.parametrize("admin_on", ["same hub", "other hub"])
async def test_a_kicked_client_cannot_resume_on_another_hub(redis_server: RedisEngine,
                                                            postgres_server: PostgresEngine, admin_on: str) -> None:
    with hubs(redis_server, postgres_server, *UNLIMITED, grace=10) as (one, two):
        async with connect(one if admin_on == "same hub" else two) as admin, connect(one) as ada, \
                connect(two) as bob, trio.open_nursery() as nursery:
            await admin.hello("Root", admin_token="cluster-admin")
            await ada.hello("Ada")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("strict", max_members=16)
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            for client in (ada, bob):
                nursery.start_soon(drain, client)
            nursery.start_soon(chatter, ada)  # keeps hub one's publisher busy with forwards for Bob on hub two
            for i in range(10):
                async with connect(two) as again:  # open already: the resume is one message away
                    async with connect(one) as victim:
                        await victim.hello(f"Victim {i}")
                        await victim.join(lobby["id"])
                        token, peer_id = victim.resume_token, victim.peer_id
                        await admin.request("admin.kick", peer_id=peer_id)
                        assert (await victim.next_event("lobby.left"))["reason"] == "kicked"
                        welcome = await again.hello(f"Victim {i}", resume=token)
                    assert welcome["resumed"] is False and welcome["peer_id"] != peer_id, (i, welcome)
            nursery.cancel_scope.cancel()
