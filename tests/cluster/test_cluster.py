"""Cluster mode with the real engines: two ``voicebot serve --cluster redis://… --db postgresql://…`` processes
sharing one ``redis-server`` and one PostgreSQL database.

Covers: cross-hub ``peer.joined``/``peer.left``, chat (in order), signal, caption; ``lobby.list`` cluster-wide;
the lobby cap under concurrent joins through both hubs; a Redis outage (``cluster_unavailable`` in ``/readyz``
and to cross-hub requests, local lobbies keep working) and the recovery after Redis restarts empty.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from voicebot.client import RemoteError, connect
from voicebot.testing import PostgresEngine, RedisEngine, serve_process
from voicebot.testing import readyz_reasons as readyz

from ._hubs import HUBS, two_hubs, wait_for

pytestmark = pytest.mark.slow


async def test_cross_hub_membership_chat_signal_and_list(redis_server: RedisEngine,
                                                         postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server) as (one, two):
        async with connect(one) as ada, connect(two) as bob, connect(two) as cy:
            await ada.hello("Ada")
            await bob.hello("Bob")
            await cy.hello("Cy")
            lobby = await ada.create_lobby("across", max_members=4)
            await ada.join(lobby["id"])
            joined = await bob.join(lobby["id"])  # a lobby made on the other hub
            assert [p["peer_id"] for p in joined["peers"]] == [ada.peer_id]
            assert joined["lobby"]["members"] == 2
            event = await ada.next_event("peer.joined")
            assert event["peer"] == {"peer_id": bob.peer_id, "name": "Bob", "kind": "user"}

            listed = await cy.request("lobby.list")  # cluster-wide, from the hub that did not create it
            assert [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 2)]
            assert "partial" not in listed

            for i in range(30):  # per sender → receiver order across hubs
                await ada.chat(f"line {i}")
            got = [(await bob.next_event("chat"))["text"] for _ in range(30)]
            assert got == [f"line {i}" for i in range(30)]
            await bob.chat("hi Ada")
            event = await ada.next_event("chat")
            while event["from"] != bob.peer_id:
                event = await ada.next_event("chat")
            assert event["text"] == "hi Ada" and event["name"] == "Bob"

            await bob.signal(ada.peer_id, "offer", sdp="v=0 bob")
            signal = await ada.next_event("signal")
            assert (signal["from"], signal["kind"], signal["sdp"]) == (bob.peer_id, "offer", "v=0 bob")
            await ada.signal(bob.peer_id, "answer", sdp="v=0 ada")
            signal = await bob.next_event("signal")
            assert (signal["from"], signal["kind"], signal["sdp"]) == (ada.peer_id, "answer", "v=0 ada")
            await bob.caption("hello there")
            caption = await ada.next_event("caption")
            assert (caption["from"], caption["text"]) == (bob.peer_id, "hello there")

            async with connect(two) as bot:  # a bot on the other hub: bot.status and assistant captions
                await bot.hello("Helper", kind="bot", admin_token="cluster-admin")
                await bot.join(lobby["id"])
                assert (await ada.next_event("peer.joined"))["peer"]["kind"] == "bot"
                await bot.bot_status("thinking")
                status = await ada.next_event("bot.status")
                assert (status["peer_id"], status["state"]) == (bot.peer_id, "thinking")
                await bot.caption("answer for Ada", role="assistant", about=ada.peer_id)
                caption = await ada.next_event("caption")
                assert (caption["from"], caption["role"], caption["about"]) == (bot.peer_id, "assistant", ada.peer_id)
                await bot.leave()
                assert (await ada.next_event("peer.left"))["peer_id"] == bot.peer_id

            await cy.join(lobby["id"])  # a second member on hub two: ada hears once
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == cy.peer_id
            await bob.leave()
            left = await ada.next_event("peer.left")
            assert (left["peer_id"], left["reason"]) == (bob.peer_id, "left")
            assert (await cy.next_event("peer.left"))["peer_id"] == bob.peer_id
            await cy.aclose()  # gone for good after the 2 s resume grace
            left = await ada.next_event("peer.left", timeout=15)
            assert (left["peer_id"], left["reason"]) == (cy.peer_id, "disconnected")
            listed = await bob.request("lobby.list")
            assert [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 1)]


async def test_password_across_hubs_and_dead_hub(redis_server: RedisEngine,
                                                 postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server) as (one, two):
        async with connect(one) as ada, connect(two) as bob:
            await ada.hello("Ada")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("locked", password="open sesame")
            await ada.join(lobby["id"], password="open sesame")
            with pytest.raises(RemoteError) as info:  # checked on the joiner's hub
                await bob.join(lobby["id"], password="wrong")
            assert info.value.code == "wrong_password"
            await bob.join(lobby["id"], password="open sesame")
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == bob.peer_id
            more = [(await bob.create_lobby(f"more {i}"))["id"] for i in range(2)]  # made on hub two
            first = await ada.request("lobby.list", limit=2)  # pages by id across both hubs' lobbies
            assert len(first["lobbies"]) == 2 and first["next_cursor"] == first["lobbies"][-1]["id"]
            rest = await ada.request("lobby.list", limit=2, cursor=first["next_cursor"])
            assert rest["next_cursor"] is None
            listed = first["lobbies"] + rest["lobbies"]
            assert [lb["id"] for lb in listed] == sorted([lobby["id"], *more])
            mine = next(lb for lb in listed if lb["id"] == lobby["id"])
            assert (mine["has_password"], mine["members"]) == (True, 2)

            HUBS[two].kill()  # kill -9 of hub two: Bob leaves the lobby on hub one once its key expires
            left = await ada.next_event("peer.left", timeout=20)
            assert (left["peer_id"], left["reason"]) == (bob.peer_id, "disconnected")
            listed = await ada.request("lobby.list")
            assert next(lb for lb in listed["lobbies"] if lb["id"] == lobby["id"])["members"] == 1


async def test_lobby_cap_holds_across_hubs(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    cap, per_hub = 16, 12
    with two_hubs(redis_server, postgres_server, "--request-rate", "1000") as urls:
        outcomes: list[str] = []
        ready, counted = trio.Event(), trio.Event()
        lobby_id: list[str] = []

        async def member(url: str, name: str, task_status: trio.TaskStatus[None]) -> None:
            async with connect(url) as client:
                await client.hello(name)
                task_status.started()
                await ready.wait()
                try:
                    await client.join(lobby_id[0])
                    outcomes.append("joined")
                except RemoteError as exc:
                    outcomes.append(exc.code)
                if len(outcomes) == 2 * per_hub:
                    counted.set()
                await trio.sleep(3)  # stay until everyone has counted

        async with connect(urls[0]) as owner:
            await owner.hello("Owner")
            lobby_id.append((await owner.create_lobby("capped", max_members=cap))["id"])
            async with trio.open_nursery() as nursery:
                for i in range(per_hub):
                    for h, url in enumerate(urls):
                        await nursery.start(member, url, f"m{h}x{i}")
                ready.set()
                with trio.fail_after(20):
                    await counted.wait()
                listed = await owner.request("lobby.list")
            assert outcomes.count("joined") == cap, outcomes
            assert outcomes.count("lobby_full") == 2 * per_hub - cap, outcomes
            assert listed["lobbies"][0]["members"] == cap


async def test_redis_outage_and_recovery(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server) as (one, two):
        await wait_for(lambda: "cluster_unavailable" not in readyz(one))
        async with connect(one) as ada, connect(one) as cy, connect(two) as bob, connect(two) as dee:
            for client, name in ((ada, "Ada"), (cy, "Cy"), (bob, "Bob"), (dee, "Dee")):
                await client.hello(name)
            lobby = await ada.create_lobby("sturdy", max_members=8)
            for client in (ada, cy, bob):
                await client.join(lobby["id"])
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == cy.peer_id
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == bob.peer_id

            redis_server.stop()
            await wait_for(lambda: "cluster_unavailable" in readyz(one) and "cluster_unavailable" in readyz(two))
            # Local lobbies keep working: Cy (same hub) gets Ada's chat; Ada is told Bob could not be reached.
            with pytest.raises(RemoteError) as info:
                await ada.request("chat", text="still here")
            assert info.value.code == "cluster_unavailable" and info.value.retryable
            chat = await cy.next_event("chat")
            assert (chat["from"], chat["text"]) == (ada.peer_id, "still here")
            with pytest.raises(RemoteError) as info:  # a signal to a peer on the other hub
                await ada.request("signal", to=bob.peer_id, kind="offer", sdp="v=0")
            assert info.value.code == "cluster_unavailable" and info.value.retryable
            await ada.request("signal", to=cy.peer_id, kind="offer", sdp="v=0 local")  # same hub: fine
            assert (await cy.next_event("signal"))["sdp"] == "v=0 local"
            with pytest.raises(RemoteError) as info:  # the cap cannot be checked cluster-wide
                await dee.join(lobby["id"])
            assert info.value.code == "cluster_unavailable"
            listed = await ada.request("lobby.list")
            assert listed.get("partial") is True and lobby["id"] in {lb["id"] for lb in listed["lobbies"]}

            redis_server.start()  # back, and empty: the hubs re-assert lobbies and members
            await wait_for(lambda: not {"cluster_unavailable"} & set(readyz(one) + readyz(two)))
            await trio.sleep(1.5)
            await bob.chat("after the outage")
            chat = await ada.next_event("chat", timeout=10)
            assert (chat["from"], chat["text"]) == (ada.peer_id, "still here")  # her own, from the outage
            chat = await ada.next_event("chat", timeout=10)
            assert (chat["from"], chat["text"]) == (bob.peer_id, "after the outage")
            joined = await dee.join(lobby["id"])
            assert {p["peer_id"] for p in joined["peers"]} == {ada.peer_id, cy.peer_id, bob.peer_id}
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == dee.peer_id
            listed = await dee.request("lobby.list")
            assert [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 4)]


def test_cluster_needs_postgresql() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "serve", "--port", "0", "--cluster", "redis://127.0.0.1:1/0",
         "--db", ":memory:"], check=False, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "PostgreSQL" in proc.stderr + proc.stdout


async def test_hub_started_while_redis_is_down(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    redis_server.stop()
    try:
        with serve_process("--cluster", redis_server.url, "--db", postgres_server.new_database("cold"),
                           "--local-worker", "0", "--max-lobbies-per-address", "0",
                           "--max-lobbies-per-peer", "0") as (_, url):
            assert "cluster_unavailable" in await trio.to_thread.run_sync(readyz, url)
            async with connect(url) as ada:
                await ada.hello("Ada")
                # No lobby quota to count: made locally, published once Redis is there.
                lobby = await ada.create_lobby("early")
                with pytest.raises(RemoteError) as info:
                    await ada.join(lobby["id"])
                assert info.value.code == "cluster_unavailable"
                redis_server.start()
                await wait_for(lambda: "cluster_unavailable" not in readyz(url))
                joined = await ada.join(lobby["id"])
                assert joined["lobby"]["members"] == 1
                listed = await ada.request("lobby.list")
                assert [(lb["id"], lb["members"]) for lb in listed["lobbies"]] == [(lobby["id"], 1)]
                assert "partial" not in listed
    finally:
        if redis_server.process.poll() is not None:
            redis_server.start()


def _commandstats(redis: RedisEngine) -> dict[str, int]:
    """Calls per Redis command since the last ``CONFIG RESETSTAT``."""
    out = {}
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line.partition(":")
            out[name.removeprefix("cmdstat_")] = int(fields.split(",")[0].removeprefix("calls="))
    return out


async def test_heartbeat_is_one_call_per_hub(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server) as (one, _):
        async with connect(one) as ada:
            await ada.hello("Ada")
            lobbies = [(await ada.create_lobby(f"many {i}"))["id"] for i in range(8)]
            await ada.join(lobbies[0])
            await trio.sleep(1.5)
            redis_server.command("CONFIG", "RESETSTAT")
            await trio.sleep(4)
            stats = _commandstats(redis_server)
            # Two hubs, one heartbeat a second each: one script call per heartbeat whatever the lobby count
            # (commandstats also counts the commands scripts run).
            assert 6 <= stats.get("evalsha", 0) <= 10, stats
            assert stats.get("pexpire") == stats["evalsha"], stats  # the inbox's TTL inside each tick
            # Idle, each hub's reader blocks a read for half a call deadline (1 s) at a time.
            assert 4 <= stats.get("xread", 0) <= 12, stats
            assert "publish" not in stats, stats
            listed = await ada.list_lobbies()
            assert sorted(lb["id"] for lb in listed) == sorted(lobbies)
