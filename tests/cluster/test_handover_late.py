"""A session moving between hubs gets every message exactly once, in order per sender, whatever the old hub does
(real ``voicebot serve --cluster`` processes over one ``redis-server``).

Covers: an old hub that answers the hand-over only after the 2 s the new hub waits (stopped with ``SIGSTOP``, then
continued while its key still lives): nothing it read late reaches the peer again, neither relayed nor handed
over into the kept messages a later resume drains; a hub lost (kill -9) before its key expired, with a sender whose
hub learns of the move only after the takeover read the lost hub's inbox: what it sends there reaches the peer on
its new hub; a hub whose key expires while the new hub waits for its answer: what it had unread for the peer is
kept for it when the inbox is salvaged, and comes first.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from voicebot.client import Client, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import HUBS, hubs, in_grace, kill_hub

pytestmark = pytest.mark.slow


@asynccontextmanager
async def stopped(proc: subprocess.Popen[str]) -> AsyncIterator[None]:
    """The hub process is paused (``SIGSTOP``) until the block ends."""
    proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGCONT)


async def chat_acked(client: Client, text: str) -> None:
    """Chat ``text`` and wait for its echo (its hub has taken it)."""
    await client.chat(text)
    while (await client.next_event("chat", timeout=20))["text"] != text:
        pass


async def chats_from(client: Client, sender: str, last: str, settle: float = 1.0) -> list[str]:
    """The texts of ``sender``'s chats ``client`` gets until ``last``, and for ``settle`` seconds after it (a
    duplicate arriving late counts); stops at 20 s without ``last``."""
    texts: list[str] = []
    with trio.move_on_after(20):
        while last not in texts:
            event = await client.next_event("chat", timeout=30)
            if event["from"] == sender:
                texts.append(event["text"])
    with trio.move_on_after(settle):
        while True:
            event = await client.next_event("chat", timeout=30)
            if event["from"] == sender:
                texts.append(event["text"])
    return texts


async def test_a_hand_over_answered_late_delivers_each_message_once(redis_server: RedisEngine,
                                                                    postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, count=3, grace=10) as (one, two, three):
        async with connect(three) as cy:
            await cy.hello("Cy")
            lobby = await cy.create_lobby("late")
            await cy.join(lobby["id"])
            token, bob_id = await in_grace(one, "Bob", lobby["id"])
            async with connect(two) as bob2:
                async with stopped(HUBS[one]):  # hub one stalls: it reads its inbox again only after 2 s
                    for i in range(3):  # into hub one's inbox, ahead of the takeover
                        await chat_acked(cy, f"before {i}")
                    await trio.sleep(0.3)
                    welcome: dict[str, object] = {}

                    async def resume() -> None:
                        welcome.update(await bob2.request("hello", name="Bob", resume=token, timeout=30))

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(resume)
                        await trio.sleep(0.5)  # hub two waits for hub one's answer
                        for i in range(3):  # into hub one's inbox, behind the takeover
                            await chat_acked(cy, f"during {i}")
                    assert (welcome["resumed"], welcome["peer_id"]) == (True, bob_id)
                    for i in range(3):  # Cy's hub was told of the move: straight to hub two
                        await chat_acked(cy, f"after {i}")
                    await trio.sleep(0.2)
                # hub one runs again (its key still lives): it reads the takeover late and answers it
                await trio.sleep(2)
                for i in range(3):
                    await chat_acked(cy, f"later {i}")
                got = await chats_from(bob2, cy.peer_id, "later 2")
                expected = [f"{when} {i}" for when in ("before", "during", "after", "later") for i in range(3)]
                assert got == expected
                token = str(welcome["resume_token"])
            await trio.sleep(0.5)  # in grace on hub two
            async with connect(three) as bob3:  # a later resume drains the kept messages: none is a copy
                assert (await bob3.hello("Bob", resume=token))["resumed"] is True
                await chat_acked(cy, "last")
                assert (await bob3.next_event("chat"))["text"] == "last"


def kill_reader(redis: RedisEngine, hub_id: str) -> None:
    """``CLIENT KILL`` the inbox-reading connection of hub ``hub_id`` (it reconnects 50 ms after it notices)."""
    listing = redis.command("CLIENT", "LIST").decode(errors="replace")
    ids = re.findall(rf"\bid=(\d+)\b[^\n]*\bname=voicebot-reader-{hub_id}\b", listing)
    assert ids, listing
    for client_id in ids:
        redis.command("CLIENT", "KILL", "ID", client_id)


async def test_messages_sent_to_a_lost_hub_after_the_takeover_reach_the_peer(redis_server: RedisEngine,
                                                                             postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, count=3, grace=10) as (one, two, three):
        async with connect(three) as cy, connect(three) as root:
            await root.hello("Root", admin_token="cluster-admin")
            three_id = (await root.request("admin.stats"))["stats"]["cluster"]["hub_id"]
            await cy.hello("Cy")
            lobby = await cy.create_lobby("lost")
            await cy.join(lobby["id"])
            async with connect(one) as bob:
                await bob.hello("Bob")
                await bob.join(lobby["id"])
                await chat_acked(cy, "hello")
                assert (await bob.next_event("chat"))["text"] == "hello"
                token, bob_id = bob.resume_token, bob.peer_id
                await trio.sleep(0.3)  # hub one has trimmed what it read from its inbox
                await kill_hub(one)  # its key lives on for up to 5 s
                await bob.wait_closed(timeout=10)
            async with connect(two) as bob2:
                async with stopped(HUBS[three]):
                    # Cy's hub learns of the move late: stalled, and its inbox reader reconnects after it ran
                    kill_reader(redis_server, three_id)
                    welcome = await bob2.request("hello", name="Bob", resume=token, timeout=30)  # no answer: 2 s
                    assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, bob_id,
                                                                                             lobby["id"])
                    for i in range(3):  # waits in hub three's socket: sent to hub one (its key lives) once it runs
                        await cy.chat(f"late {i}")
                    await trio.sleep(0.2)
                for i in range(3):
                    while (await cy.next_event("chat", timeout=20))["text"] != f"late {i}":
                        pass
                await trio.sleep(1)
                for i in range(3):
                    await chat_acked(cy, f"after {i}")
                got = await chats_from(bob2, cy.peer_id, "after 2")
                assert got == [f"{when} {i}" for when in ("late", "after") for i in range(3)]


def pttl(redis: RedisEngine, key: str) -> int:
    """Milliseconds ``key`` has left (``-2``: gone)."""
    return int(redis.command("PTTL", key).decode().strip(":\r\n"))


async def test_a_hub_lost_while_the_new_hub_waits_for_it_leaves_its_unread_messages(
        redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, count=3, grace=10) as (one, two, three):
        async with connect(one) as root:
            await root.hello("Root", admin_token="cluster-admin")
            one_key = "voicebot:hub:" + (await root.request("admin.stats"))["stats"]["cluster"]["hub_id"]
        async with connect(three) as cy:
            await cy.hello("Cy")
            lobby = await cy.create_lobby("expiring")
            await cy.join(lobby["id"])
            async with connect(one) as bob, connect(one) as dan:  # Dan does not come back: chats go to hub one
                for client, name in ((bob, "Bob"), (dan, "Dan")):
                    await client.hello(name)
                    await client.join(lobby["id"])
                token = bob.resume_token
                await trio.sleep(0.3)
                await kill_hub(one)
                await bob.wait_closed(timeout=10)
            for i in range(3):  # into hub one's inbox: its key lives on for a while
                await chat_acked(cy, f"unread {i}")
            while pttl(redis_server, one_key) > 1500:  # noqa: ASYNC110 - the key expires while hub two waits
                await trio.sleep(0.02)
            assert pttl(redis_server, one_key) > 0
            async with connect(two) as bob2, trio.open_nursery() as nursery:
                welcome: dict[str, object] = {}
                resumed = trio.Event()

                async def resume() -> None:
                    welcome.update(await bob2.request("hello", name="Bob", resume=token, timeout=30))
                    resumed.set()

                nursery.start_soon(resume)
                while pttl(redis_server, one_key) > 0:  # noqa: ASYNC110 - polling Redis
                    await trio.sleep(0.02)
                await chat_acked(cy, "gone 0")  # for Dan to hub one, which is gone: its unread inbox is salvaged
                await chat_acked(cy, "gone 1")
                await resumed.wait()
                assert welcome["resumed"] is True
                got = await chats_from(bob2, cy.peer_id, "gone 1")
                assert got == ["unread 0", "unread 1", "unread 2", "gone 0", "gone 1"]
