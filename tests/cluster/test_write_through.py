"""What a hub buffers for a peer in grace survives its loss at any moment (real ``voicebot serve --cluster``
processes over one ``redis-server``).

A hub copies each message it buffers for a peer in grace to Redis as it comes, and trims its inbox only in the
same script as that copy: when it is killed (``SIGKILL``) right after the last message was acknowledged, every
message is either copied or still in its inbox, and the peer resuming on another hub gets each one once, in order
per sender — whether that hub claims the peer (the dead hub's key still lives) or salvages the inbox (it expired).
Before write-through, what the hub had read in its last heartbeat (up to a second) was lost.
"""

from __future__ import annotations

import pytest
import trio

from voicebot.client import Client, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import UNLIMITED, hubs, in_grace, kill_hub, wait_for
from .test_handover_late import chat_acked

pytestmark = pytest.mark.slow

async def chats(client: Client, count: int, settle: float = 1.0) -> list[tuple[str, str]]:
    """``(sender, text)`` of the next ``count`` chats ``client`` gets, then of any that arrive within ``settle``
    seconds (a duplicate arriving late counts)."""
    got: list[tuple[str, str]] = []
    with trio.move_on_after(30):
        while len(got) < count:
            event = await client.next_event("chat", timeout=30)
            got.append((event["from"], event["text"]))
    with trio.move_on_after(settle):
        while True:
            event = await client.next_event("chat", timeout=30)
            got.append((event["from"], event["text"]))
    return got


@pytest.mark.parametrize("resume", ["claim", "salvage"])
async def test_a_hub_killed_right_after_the_last_message_loses_nothing_of_a_peer_in_grace(
        redis_server: RedisEngine, postgres_server: PostgresEngine, resume: str) -> None:
    local, remote = 10, 40
    with hubs(redis_server, postgres_server, *UNLIMITED, grace=20) as (one, two):
        async with connect(one) as ada, connect(two) as cy:
            await ada.hello("Ada")
            await cy.hello("Cy")
            lobby = await ada.create_lobby("kept")
            await ada.join(lobby["id"])
            await cy.join(lobby["id"])
            token, bob_id = await in_grace(two, "Bob", lobby["id"])  # hub two buffers for him
            for i in range(local):  # buffered on hub two from its own peer: in its memory only
                await chat_acked(cy, f"local {i}")
            for i in range(remote):  # through hub two's inbox
                await chat_acked(ada, f"remote {i}")
            await trio.sleep(0.05)
            await kill_hub(two)
            if resume == "salvage":  # hub two's key expires: the takeover salvages its inbox
                await wait_for(lambda: redis_server.command("KEYS", "voicebot:hub:*").startswith(b"*1\r\n"))
            async with connect(one) as bob2:
                welcome = await bob2.request("hello", name="Bob", resume=token, timeout=30)
                assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, bob_id, lobby["id"])
                got = await chats(bob2, local + remote)
    by_cy = [text for sender, text in got if sender == cy.peer_id]
    by_ada = [text for sender, text in got if sender == ada.peer_id]
    assert by_cy == [f"local {i}" for i in range(local)], got
    assert by_ada == [f"remote {i}" for i in range(remote)], got
    assert len(got) == local + remote, got
