"""``hello {resume}`` on another hub right after a ``lobby.join`` (real hubs, one Redis, one PostgreSQL).

The join's Redis step records the session's lobby, so a resume that arrives at once on another hub resumes in
that lobby, and the lobby's other members never see the joiner leave.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from voicebot.client import Client, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import hubs

pytestmark = pytest.mark.slow


async def until_chat(client: Client, sender: str, text: str) -> list[dict[str, Any]]:
    """``client``'s events up to the chat ``text`` from ``sender`` (that chat included)."""
    seen = []
    while True:
        event = await client.next_event(timeout=10)
        seen.append(event)
        if event.get("type") == "chat" and (event["from"], event["text"]) == (sender, text):
            return seen


async def test_resume_on_another_hub_right_after_a_join(redis_server: RedisEngine,
                                                        postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, grace=10) as (one, two):
        async with connect(one) as ada, connect(two) as bob:
            await ada.hello("Ada")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("doorway", max_members=3)
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            for i in range(20):
                async with connect(two) as again:  # open already: the resume is one message away
                    async with connect(one) as first:
                        await first.hello(f"Joiner {i}")
                        await first.join(lobby["id"])
                        token, peer_id = first.resume_token, first.peer_id
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(first.ws.aclose)  # cut now, not waiting for anything
                            welcome = await again.hello(f"Joiner {i}", resume=token)
                    assert (welcome["resumed"], welcome["peer_id"], welcome.get("lobby_id")) == (
                        True, peer_id, lobby["id"]), (i, welcome)
                    assert {p["peer_id"] for p in welcome["peers"]} == {ada.peer_id, bob.peer_id}, i
                    await again.chat(f"still here {i}")
                    for member in (ada, bob):
                        seen = await until_chat(member, peer_id, f"still here {i}")
                        left = [e for e in seen if e.get("type") == "peer.left" and e.get("peer_id") == peer_id]
                        assert not left, (i, left)
                    await again.leave()
                for member in (ada, bob):  # its leave reaches both before the next joiner comes
                    event = await member.next_event("peer.left", timeout=10)
                    assert event["peer_id"] == peer_id, (i, event)
