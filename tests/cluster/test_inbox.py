"""Each hub's inbox (a Redis stream) and the leave → resume window (real hubs, one Redis, one PostgreSQL).

Covers: every cross-hub message arrives once and in order while the reading connections of the hubs are killed
again and again (``CLIENT KILL``) mid-stream; a ``lobby.leave`` acknowledged on one hub is in Redis before its
reply, so a resume on another hub right after it does not bring the peer back into the lobby it left, even while
that hub's publisher has a backlog.
"""

from __future__ import annotations

import re

import pytest
import trio

from voicebot.client import connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import UNLIMITED, chatter, drain, hubs

pytestmark = pytest.mark.slow

def kill_readers(redis: RedisEngine) -> int:
    """``CLIENT KILL`` every hub's inbox-reading connection; how many were killed."""
    listing = redis.command("CLIENT", "LIST").decode(errors="replace")
    ids = re.findall(r"\bid=(\d+)\b[^\n]*\bname=voicebot-reader-", listing)
    for client_id in ids:
        redis.command("CLIENT", "KILL", "ID", client_id)
    return len(ids)


async def test_messages_survive_killed_reader_connections(redis_server: RedisEngine,
                                                          postgres_server: PostgresEngine) -> None:
    count = 400
    with hubs(redis_server, postgres_server, *UNLIMITED) as (one, two):
        async with connect(one) as ada, connect(two) as bob, trio.open_nursery() as nursery:
            await ada.hello("Ada")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("choppy")
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            nursery.start_soon(drain, ada)
            killed = 0
            sending = trio.Event()
            done = trio.Event()

            async def killer() -> None:
                nonlocal killed
                await sending.wait()
                while not done.is_set():
                    killed += await trio.to_thread.run_sync(kill_readers, redis_server)
                    await trio.sleep(0.2)

            nursery.start_soon(killer)
            received: list[str] = []

            async def collect() -> None:
                while len(received) < count:
                    event = await bob.next_event("chat", timeout=30)
                    received.append(event["text"])

            async with trio.open_nursery() as inner:
                inner.start_soon(collect)
                sending.set()
                for i in range(count):
                    await ada.chat(f"n{i}")
                    await trio.sleep(0.005)
            done.set()
            assert killed >= 6, killed  # both hubs' readers, many times while the chat went on
            assert received == [f"n{i}" for i in range(count)]  # once each, in order
            with trio.move_on_after(1.0):  # and nothing after it (no message read twice)
                extra = await bob.next_event("chat", timeout=2)
                raise AssertionError(f"read twice: {extra}")
            nursery.cancel_scope.cancel()


async def test_resume_on_another_hub_right_after_a_leave(redis_server: RedisEngine,
                                                         postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, *UNLIMITED, grace=10) as (one, two):
        async with connect(one) as ada, connect(two) as bob, trio.open_nursery() as nursery:
            await ada.hello("Ada")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("exit", max_members=4)
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            nursery.start_soon(drain, bob)
            nursery.start_soon(drain, ada)
            nursery.start_soon(chatter, ada)  # keeps hub one's publisher busy with forwards for Bob on hub two
            for i in range(20):
                async with connect(two) as again:  # open already: the resume is one message away
                    async with connect(one) as first:
                        await first.hello(f"Leaver {i}")
                        await first.join(lobby["id"])
                        token, peer_id = first.resume_token, first.peer_id
                        await first.leave()
                        async with trio.open_nursery() as cut:
                            cut.start_soon(first.ws.aclose)
                            welcome = await again.hello(f"Leaver {i}", resume=token)
                    assert (welcome["resumed"], welcome["peer_id"]) == (True, peer_id), (i, welcome)
                    assert welcome.get("lobby_id") is None, (i, welcome)
            with trio.fail_after(10):  # every leaver is gone from the lobby cluster-wide
                while True:
                    listed = await bob.request("lobby.list")
                    if [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 2)]:
                        break
                    await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
