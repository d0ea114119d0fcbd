"""``hello {resume}`` on any hub (real ``voicebot serve --cluster`` processes, one Redis, one PostgreSQL).

Covers: a resume on another hub while the old socket is open (same peer and lobby, old socket closed 4001);
messages buffered for a peer in grace on one hub delivered in order after it resumes on another; kill -9 of the
hub holding a peer: it resumes on a surviving hub, in the same lobby, with what was sent to it meanwhile, and the
lobby's other members never see it leave.
"""

from __future__ import annotations

import pytest
import trio

from voicebot.client import Client, RemoteError, connect
from voicebot.testing import PostgresEngine, RedisEngine, serve_process

from ._hubs import HUB_ARGS, hubs, in_grace, kill_hub

pytestmark = pytest.mark.slow


async def assert_no_leave(client: Client, peer_id: str, wait: float = 1.0) -> None:
    """Read ``client``'s events for ``wait`` seconds: none is a ``peer.left`` of ``peer_id``."""
    with trio.move_on_after(wait):
        async for event in client.events:
            assert not (event.get("type") == "peer.left" and event.get("peer_id") == peer_id), event


async def test_resume_on_another_hub(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, grace=10) as (one, two):
        async with connect(one) as ada, connect(two) as bob, connect(one) as cy:
            for client, name in ((ada, "Ada"), (bob, "Bob"), (cy, "Cy")):
                await client.hello(name)
            lobby = await ada.create_lobby("moving", max_members=3)
            for client in (ada, bob, cy):
                await client.join(lobby["id"])
            async with connect(two) as ada2:  # her first socket (on hub one) is still open
                welcome = await ada2.hello("Ada", resume=ada.resume_token)
                assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, ada.peer_id,
                                                                                         lobby["id"])
                assert [p["peer_id"] for p in welcome["peers"]] == [bob.peer_id, cy.peer_id]
                reason = await ada.wait_closed(timeout=10)
                assert reason is not None and reason.code == 4001
                await cy.chat("from hub one")  # reaches her on her new hub
                chat = await ada2.next_event("chat")
                assert (chat["from"], chat["text"]) == (cy.peer_id, "from hub one")
                await ada2.chat("from hub two")
                for other in (bob, cy):
                    chat = await other.next_event("chat")
                    while chat["from"] != ada.peer_id:
                        chat = await other.next_event("chat")
                    assert chat["text"] == "from hub two"
                token = ada2.resume_token
            await trio.sleep(0.5)  # hub two has seen her socket close: she is in grace there
            # Cy (hub one) and Bob (hub two) write to her meanwhile.
            for i in range(5):
                await cy.chat(f"while away {i}")
                await bob.chat(f"bob while away {i}")
            await trio.sleep(0.5)
            async with connect(one) as ada3:  # back on hub one: hub two hands over what it buffered
                welcome = await ada3.hello("Ada", resume=token)
                assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, ada.peer_id,
                                                                                         lobby["id"])
                got = [await ada3.next_event("chat") for _ in range(10)]
                assert [c["text"] for c in got if c["from"] == cy.peer_id] == [f"while away {i}" for i in range(5)]
                assert [c["text"] for c in got if c["from"] == bob.peer_id] == [f"bob while away {i}"
                                                                                for i in range(5)]
                await bob.chat("after")
                chat = await ada3.next_event("chat")
                assert (chat["from"], chat["text"]) == (bob.peer_id, "after")
                await assert_no_leave(bob, ada.peer_id)
                await assert_no_leave(cy, ada.peer_id)
                listed = await cy.request("lobby.list")
                assert [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 3)]
                async with connect(two) as late:  # the token she no longer holds resumes nothing
                    assert (await late.hello("Ada", resume=token))["resumed"] is False


async def test_kill_hub_and_resume_elsewhere(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, grace=10) as (one, two):
        async with connect(one) as ada, connect(one) as cy:
            async with connect(two) as bob:
                for client, name in ((ada, "Ada"), (bob, "Bob"), (cy, "Cy")):
                    await client.hello(name)
                lobby = await ada.create_lobby("sturdy")
                for client in (ada, bob, cy):
                    await client.join(lobby["id"])
                await bob.signal(ada.peer_id, "offer", sdp="v=0 bob")
                assert (await ada.next_event("signal"))["from"] == bob.peer_id
                token, bob_id = bob.resume_token, bob.peer_id
                await kill_hub(two)  # kill -9 mid-call
                await bob.wait_closed(timeout=10)  # his socket dies with his hub
                await trio.sleep(0.2)  # Redis has seen its connections close (what was in flight to it is lost)
            for i in range(3):  # acknowledged: each comes back to Ada from her hub
                await ada.chat(f"while Bob is away {i}")
                echo = await ada.next_event("chat")
                assert echo["text"] == f"while Bob is away {i}"
            async with connect(one) as bob2:
                welcome = await bob2.hello("Bob", resume=token)
                assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, bob_id, lobby["id"])
                assert {p["peer_id"] for p in welcome["peers"]} == {ada.peer_id, cy.peer_id}
                got = [(await bob2.next_event("chat"))["text"] for _ in range(3)]
                assert got == [f"while Bob is away {i}" for i in range(3)], got
                await ada.chat("welcome back")
                assert (await bob2.next_event("chat"))["text"] == "welcome back"
                await bob2.signal(ada.peer_id, "offer", sdp="v=0 again")
                assert (await ada.next_event("signal"))["sdp"] == "v=0 again"
                await trio.sleep(6)  # past hub two's liveness key: Bob stays, now on hub one
                await assert_no_leave(ada, bob_id)
                await assert_no_leave(cy, bob_id)
                listed = await cy.request("lobby.list")
                assert [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 3)]


async def test_buffer_of_a_peer_in_grace_survives_its_hub(redis_server: RedisEngine,
                                                          postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, grace=10) as (one, two):
        async with connect(one) as ada:
            await ada.hello("Ada")
            lobby = await ada.create_lobby("patient")
            await ada.join(lobby["id"])
            token, bob_id = await in_grace(two, "Bob", lobby["id"])  # hub two buffers for him
            for i in range(3):
                await ada.chat(f"buffered {i}")
                assert (await ada.next_event("chat"))["text"] == f"buffered {i}"
            await trio.sleep(0.2)  # copied to Redis as they came (write-through)
            await kill_hub(two)
            await trio.sleep(0.2)  # Redis has seen its connections close
            for i in range(2):  # and after its loss the messages are kept in Redis directly
                await ada.chat(f"after the loss {i}")
                assert (await ada.next_event("chat"))["text"] == f"after the loss {i}"
            async with connect(one) as bob2:
                welcome = await bob2.hello("Bob", resume=token)
                assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, bob_id, lobby["id"])
                got = [(await bob2.next_event("chat"))["text"] for _ in range(5)]
                assert got == [f"buffered {i}" for i in range(3)] + [f"after the loss {i}" for i in range(2)], got
            await assert_no_leave(ada, bob_id, wait=0.5)


async def test_a_hub_started_later_leaves_other_hubs_sessions_alone(redis_server: RedisEngine,
                                                                   postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server) as (one, two):  # resume grace 2 s
        async with connect(one) as ada, connect(two) as bob:
            await ada.hello("Ada", admin_token="cluster-admin")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("kept", persistent=True)  # its members are stored in the database
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == bob.peer_id
            with serve_process(*HUB_ARGS) as (_, three):  # it restores the lobby, not Ada's and Bob's sessions
                await trio.sleep(4)  # past the grace of any session it might have restored
                await assert_no_leave(ada, bob.peer_id)
                await assert_no_leave(bob, ada.peer_id)
                async with connect(three) as cy:
                    await cy.hello("Cy")
                    joined = await cy.join(lobby["id"])
                    assert {p["peer_id"] for p in joined["peers"]} == {ada.peer_id, bob.peer_id}
                    async with connect(three) as again:  # and Bob's token still resumes him (here, even)
                        welcome = await again.hello("Bob", resume=bob.resume_token)
                        assert (welcome["resumed"], welcome["lobby_id"]) == (True, lobby["id"])


async def test_resume_elsewhere_while_redis_is_down(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, grace=30) as (one, two):
        try:
            async with connect(one) as ada:
                await ada.hello("Ada")
                lobby = await ada.create_lobby("kept")
                await ada.join(lobby["id"])
                await trio.sleep(1.2)  # stored by a heartbeat at least once
                redis_server.stop()
                async with connect(two) as ada2:  # hub two cannot know whether the token resumes something
                    with pytest.raises(RemoteError) as info:
                        await ada2.hello("Ada", resume=ada.resume_token)
                    assert info.value.code == "cluster_unavailable" and info.value.retryable
                    with pytest.raises(RemoteError) as info:  # and an unknown token: the same answer
                        await ada2.hello("Ada", resume="not-a-token-any-hub-gave")
                    assert info.value.code == "cluster_unavailable" and info.value.retryable
                redis_server.start()  # back, and empty: hub one re-asserts her session
                with trio.fail_after(20):
                    while True:
                        async with connect(two) as ada3:
                            try:
                                welcome = await ada3.hello("Ada", resume=ada.resume_token)
                            except RemoteError as exc:
                                if exc.code != "cluster_unavailable":
                                    raise
                                await trio.sleep(0.5)
                                continue
                            assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (
                                True, ada.peer_id, lobby["id"])
                            break
        finally:
            if redis_server.process.poll() is not None:
                redis_server.start()
