"""Happens-before across hubs (real ``voicebot serve`` processes over one ``redis-server``): a peer that joined
through one hub gets every message sent after its ``lobby.joined`` by members on any other hub."""

from __future__ import annotations

import random

import pytest
import trio

from voicebot.client import Client, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import UNLIMITED, hubs

pytestmark = pytest.mark.slow

#: Lift the request budgets and widen the outboxes: the senders send as fast as they can.
UNLIMITED_OUT = (*UNLIMITED, "--outbox-size", "20000", "--outbox-bytes", "16777216",
                 "--outbox-bytes-per-address", "0")


async def _chat_until(client: Client, name: str, sent: dict[str, list[tuple[int, float]]], stop: trio.Event) -> None:
    """Chat ``name:0``, ``name:1``… (each noted in ``sent[name]`` with its send time) until ``stop``, then
    ``name:end``."""
    seq = 0
    while not stop.is_set():
        sent[name].append((seq, trio.current_time()))
        await client.chat(f"{name}:{seq}")
        seq += 1
        await trio.sleep(0.005)  # as fast as the hubs keep up with on a busy 2-core machine
    await client.chat(f"{name}:end")


async def _collect(client: Client, received: dict[str, list[int]], senders: int) -> None:
    """Record ``sender name → sequence numbers`` of the chats ``client`` gets, until every sender said ``end``."""
    ended = 0
    while ended < senders:
        event = await client.next_event("chat", timeout=60)
        name, _, seq = event["text"].partition(":")
        if seq == "end":
            ended += 1
        else:
            received.setdefault(name, []).append(int(seq))


async def test_a_joiner_gets_every_message_sent_after_its_lobby_joined(
        redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, *UNLIMITED_OUT, count=3) as (one, two, three):
        joiners = 6
        async with (connect(one) as ada, connect(three) as cy, trio.open_nursery() as nursery):
            await ada.hello("Ada")
            await cy.hello("Cy")
            lobby = await ada.create_lobby("busy", max_members=joiners + 2)
            await ada.join(lobby["id"])
            await cy.join(lobby["id"])
            sent: dict[str, list[tuple[int, float]]] = {"ada": [], "cy": []}
            joined_at: dict[int, float] = {}
            received: dict[int, dict[str, list[int]]] = {}
            stop = trio.Event()

            async def join_through_two(index: int, done: trio.Semaphore) -> None:
                await trio.sleep(random.Random(index).uniform(0.05, 0.6))
                async with connect(two) as joiner:
                    await joiner.hello(f"Joiner {index}")
                    await joiner.request("lobby.join", lobby_id=lobby["id"], timeout=30)
                    joined_at[index] = trio.current_time()
                    received[index] = {}
                    done.release()
                    await _collect(joiner, received[index], senders=2)

            async def drain(client: Client) -> None:
                while True:
                    await client.next_event(timeout=60)

            nursery.start_soon(drain, ada)  # the senders' own echoes and peer.joined events
            nursery.start_soon(drain, cy)
            nursery.start_soon(_chat_until, ada, "ada", sent, stop)
            nursery.start_soon(_chat_until, cy, "cy", sent, stop)
            done = trio.Semaphore(0)
            async with trio.open_nursery() as joining:
                for index in range(joiners):
                    joining.start_soon(join_through_two, index, done)
                for _ in range(joiners):
                    await done.acquire()
                await trio.sleep(0.3)  # keep sending a little after the last join
                stop.set()
            nursery.cancel_scope.cancel()

    checked = 0
    for index, since in joined_at.items():
        for name, log in sent.items():
            got = received[index].get(name, [])
            assert got == sorted(got), f"joiner {index}: {name}'s chats out of order"
            due = [seq for seq, at in log if at > since]
            missing = sorted(set(due) - set(got))
            assert not missing, f"joiner {index} missed {len(missing)} of {name}'s chats sent after it joined"
            checked += len(due)
    assert checked > joiners * 20  # the senders really were sending while the peers joined


async def test_messages_to_a_peer_moving_to_another_hub_arrive_once_and_in_order(
        redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    kept = ("--resume-buffer", "100000", "--resume-buffer-bytes", "67108864")  # all of it, however long it takes
    with hubs(redis_server, postgres_server, *UNLIMITED_OUT, *kept, count=3, grace=10) as (one, two, three):
        async with connect(one) as ada, connect(three) as cy, connect(two) as bob, trio.open_nursery() as nursery:
            for client, name in ((ada, "Ada"), (cy, "Cy"), (bob, "Bob")):
                await client.hello(name)
            lobby = await cy.create_lobby("moving")
            for client in (ada, cy, bob):
                await client.join(lobby["id"])
            sent: dict[str, list[tuple[int, float]]] = {"cy": [], "bob": []}
            stop = trio.Event()

            async def drain(client: Client) -> None:
                while True:
                    await client.next_event(timeout=60)

            before: dict[str, list[int]] = {}

            async def read_old() -> None:
                while True:
                    event = await ada.next_event("chat", timeout=60)
                    name, _, seq = event["text"].partition(":")
                    before.setdefault(name, []).append(int(seq))

            nursery.start_soon(drain, cy)
            nursery.start_soon(drain, bob)
            # cy is a third hub's member: its hub learns of the move late
            nursery.start_soon(_chat_until, cy, "cy", sent, stop)
            nursery.start_soon(_chat_until, bob, "bob", sent, stop)  # a member on the hub she moves to
            with trio.move_on_after(0.5):
                await read_old()
            await ada.aclose()  # in her resume grace on hub one, which buffers for her
            await trio.sleep(0.3)
            resumed_at = trio.current_time()
            after: dict[str, list[int]] = {}
            async with connect(two) as ada2:
                welcome = await ada2.request("hello", name="Ada", resume=ada.resume_token, timeout=30)
                assert (welcome["resumed"], welcome["lobby_id"]) == (True, lobby["id"])
                await trio.sleep(0.5)  # they keep sending while the hubs hand her over
                stop.set()
                await _collect(ada2, after, senders=2)
            nursery.cancel_scope.cancel()

    for name, log in sent.items():
        got, old = after.get(name, []), before.get(name, [])
        assert got, f"nothing from {name} after the move"
        assert got == list(range(got[0], log[-1][0] + 1)), f"{name}: gap, duplicate or reordering after the move"
        assert not set(got) & set(old), f"{name}: delivered twice"
        assert got[0] <= max(seq for seq, at in log if at < resumed_at)  # what was buffered in grace came too
