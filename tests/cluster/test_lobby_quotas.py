"""Lobby quotas and lobby lifetimes hold cluster-wide: two ``voicebot serve --cluster`` processes on one real
``redis-server`` (every client connects from 127.0.0.1: one address).

Covers: ``--max-lobbies-per-address``/``--max-lobbies-per-peer`` counted over both hubs under concurrent creates;
places coming back when a lobby ends (its last member leaves, it expires unjoined, its hub dies); ``lobby.list``
not showing lobbies that ended (expired, left, or lost with their hub); a refused persistent lobby not kept in the
database (two in-process hubs, clients on one in-memory address); no Redis outage letting an address pass its
quota (creates held to a quota are refused with ``cluster_unavailable`` meanwhile, a persistent one removed from
the database again); a lost hub's unjoined lobby ending in Redis with nobody listing lobbies or counting quotas.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio

from voicebot.auth import address_key
from voicebot.client import Client, RemoteError, connect
from voicebot.testing import PostgresEngine, RedisEngine, open_client, open_test_server, settings_for_tests
from voicebot.testing import readyz_reasons as readyz

from ._hubs import HUBS, hubs, two_hubs, wait_for

pytestmark = pytest.mark.slow


async def _create(client: Client, outcomes: list[str], name: str) -> None:
    try:
        await client.create_lobby(name)
        outcomes.append("ok")
    except RemoteError as exc:
        outcomes.append(f"{exc.code}:{'address' if exc.message.startswith('your address') else 'peer'}")


async def _listed(client: Client) -> set[str]:
    return {lobby["id"] for lobby in (await client.request("lobby.list", limit=100))["lobbies"]}


async def _create_when_allowed(client: Client, name: str, timeout: float = 20.0) -> str:
    """Create a lobby, retrying while ``lobby_quota`` refuses it (a place is coming back)."""
    with trio.fail_after(timeout):
        while True:
            try:
                return str((await client.create_lobby(name))["id"])
            except RemoteError as exc:
                if exc.code != "lobby_quota":
                    raise
            await trio.sleep(1.0)  # slower than the hub's error budget (20 errors in 10 s) allows


async def test_lobby_quotas_hold_across_hubs(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server, "--max-lobbies-per-address", "4", "--max-lobbies-per-peer", "3",
                  "--request-rate", "1000") as (one, two):
        async with connect(one) as ada, connect(one) as amy, connect(two) as bob, connect(two) as ben:
            clients = [ada, amy, bob, ben]
            for i, client in enumerate(clients):
                await client.hello(f"p{i}")
            outcomes: list[str] = []
            async with trio.open_nursery() as nursery:  # 8 creates at once from one address through both hubs
                for i, client in enumerate(clients):
                    nursery.start_soon(_create, client, outcomes, f"c{i}a")
                    nursery.start_soon(_create, client, outcomes, f"c{i}b")
            assert outcomes.count("ok") == 4, outcomes
            assert outcomes.count("lobby_quota:address") == 4, outcomes
            listed = await _listed(bob)
            assert len(listed) == 4  # the refused lobbies were not registered anywhere

            # A lobby that ends (its only member leaves) gives its place back, on the other hub too.
            mine = sorted(listed)
            await bob.join(mine[0])
            await bob.leave()
            gone = await _create_when_allowed(ada, "after a leave")
            with pytest.raises(RemoteError) as info:
                await bob.create_lobby("one too many")
            assert info.value.code == "lobby_quota"
            assert mine[0] not in await _listed(ada)

            # Joined through the other hub and left before the creating hub's next heartbeat: that heartbeat
            # must not bring the lobby back.
            await bob.join(gone)
            await bob.leave()
            await trio.sleep(2.5)  # two heartbeats of both hubs
            assert gone not in await _listed(amy)
            on_two = await _create_when_allowed(bob, "made on hub two")

            # The lobbies of a hub that dies stop counting (and stop being listed) once its key expires.
            HUBS[two].kill()
            await _create_when_allowed(ada, "after a hub died")
            assert on_two not in await _listed(ada)


async def test_peer_quota_follows_the_peer_to_another_hub(redis_server: RedisEngine,
                                                         postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server, "--max-lobbies-per-peer", "2") as (one, two):
        async with connect(one) as ada:
            welcome = await ada.hello("Ada")
            for i in range(2):
                await ada.create_lobby(f"mine {i}")
        async with connect(two) as again:
            resumed = await again.hello("Ada", resume=welcome["resume_token"])
            assert resumed["peer_id"] == welcome["peer_id"]
            with pytest.raises(RemoteError) as info:
                await again.create_lobby("third")
            assert info.value.code == "lobby_quota" and info.value.message.startswith("you already created 2")


async def test_an_expired_lobby_leaves_the_list_and_the_quota(redis_server: RedisEngine,
                                                             postgres_server: PostgresEngine) -> None:
    ttl = 3.0
    with two_hubs(redis_server, postgres_server, "--max-lobbies-per-address", "1",
                  "--empty-lobby-ttl", str(ttl)) as (one, two):
        async with connect(one) as ada, connect(two) as bob:
            await ada.hello("Ada")
            await bob.hello("Bob")
            lobby = await ada.create_lobby("nobody comes")
            assert lobby["id"] in await _listed(bob)
            with pytest.raises(RemoteError) as info:
                await bob.create_lobby("second")
            assert info.value.code == "lobby_quota"
            await trio.sleep(ttl + 1.5)  # expired on hub one; its Redis key alone would live up to ttl more
            assert lobby["id"] not in await _listed(bob)
            await bob.create_lobby("now there is room")


async def test_a_refused_persistent_lobby_is_not_kept(redis_server: RedisEngine,
                                                       postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    settings = settings_for_tests(db=postgres_server.new_database("refused"), cluster=redis_server.url,
                                  max_lobbies_per_address=1)
    async with (open_test_server(settings, seed=1) as one, open_test_server(settings, seed=2) as two,
                open_client(one, "Zed") as zed, open_client(two, "Yan") as yan):
        for client in (zed, yan):  # registered names may create persistent lobbies (and are held to quotas)
            await client.request("name.register", password=f"{client.peer_id} password")
        kept = await zed.create_lobby("kept", persistent=True)
        with pytest.raises(RemoteError) as info:  # the same address through the other hub
            await yan.create_lobby("refused", persistent=True)
        assert info.value.code == "lobby_quota"
        stored = await two.persistence.require().list_lobbies()
        assert [record.id for record in stored] == [kept["id"]]
        assert list(two.hub.lobbies) == [] and list(one.hub.lobbies) == [kept["id"]]
        assert await _listed(yan) == {kept["id"]}


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - polling state another task or process changes
            await trio.sleep(0.1)


def _stored_meta(redis: RedisEngine, lobby_id: str) -> dict[str, Any]:
    return dict(json.loads(redis.command("GET", f"voicebot:lobby:{lobby_id}").split(b"\r\n")[1]))


def _redis_int(redis: RedisEngine, *command: str) -> int:
    reply = redis.command(*command)
    assert reply.startswith(b":"), reply
    return int(reply[1:].strip())


async def test_no_redis_outage_lets_an_address_pass_its_quota(redis_server: RedisEngine,
                                                             postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server, "--max-lobbies-per-address", "4",
                  "--request-rate", "1000") as (one, two):
        await wait_for(lambda: not {"cluster_unavailable"} & set(readyz(one) + readyz(two)))
        async with connect(one) as ada, connect(two) as bob, connect(two) as root:
            await ada.hello("Ada")
            await bob.hello("Bob")
            await root.hello("Root", admin_token="cluster-admin")
            before = (await ada.create_lobby("before the outage"))["id"]

            redis_server.stop()
            try:
                await wait_for(lambda: "cluster_unavailable" in readyz(one) and "cluster_unavailable" in readyz(two))
                for client in (ada, bob):  # the quota cannot be counted: no lobby, on either hub
                    with pytest.raises(RemoteError) as info:
                        await client.create_lobby("during the outage")
                    assert info.value.code == "cluster_unavailable" and info.value.retryable
                # An admin is held to no quota: created on its hub, registered once Redis is back.
                admins = (await root.create_lobby("an admin's"))["id"]
                listed = await ada.request("lobby.list")
                assert listed["partial"] is True and {lb["id"] for lb in listed["lobbies"]} == {before}
            finally:
                if redis_server.process.poll() is not None:
                    redis_server.start()  # empty: every hub re-registers its lobbies

            await wait_for(lambda: not {"cluster_unavailable"} & set(readyz(one) + readyz(two)))
            await trio.sleep(1.5)  # a heartbeat of each hub re-registered its lobbies and their creators
            outcomes: list[str] = []
            async with trio.open_nursery() as nursery:  # the address has 2 of its 4: 2 of these 6 go through
                for i in range(3):
                    nursery.start_soon(_create, ada, outcomes, f"after a{i}")
                    nursery.start_soon(_create, bob, outcomes, f"after b{i}")
            assert outcomes.count("ok") == 2, outcomes
            assert outcomes.count("lobby_quota:address") == 4, outcomes
            listed_ids = await _listed(bob)
            assert {before, admins} <= listed_ids and len(listed_ids) == 4


async def test_a_create_cut_off_by_an_outage_is_undone(redis_server: RedisEngine,
                                                       postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    settings = settings_for_tests(db=postgres_server.new_database("outage"), cluster=redis_server.url,
                                  max_lobbies_per_address=2)
    async with open_test_server(settings, seed=1) as one, open_client(one, "Zed") as zed:
        assert one.cluster is not None
        await zed.request("name.register", password="zed's password")
        kept = await zed.create_lobby("kept", persistent=True)
        await _until(one.cluster.settled, 10)  # the hub must not know of the outage beforehand
        # Every call Redis gets hangs past the 2 s call deadline (the hub still believes it is reachable).
        redis_server.command("CLIENT", "PAUSE", "3000", "ALL")
        with pytest.raises(RemoteError) as info:
            await zed.create_lobby("cut off", persistent=True)
        assert info.value.code == "cluster_unavailable" and info.value.retryable
        assert list(one.hub.lobbies) == [kept["id"]]  # not kept here, nor in the database
        assert [r.id for r in await one.persistence.require().list_lobbies()] == [kept["id"]]
        await _until(one.cluster.settled, 15)  # Redis answers again: the one place the address holds is its own
        await zed.create_lobby("the second place")
        with pytest.raises(RemoteError) as info:
            await zed.create_lobby("one too many")
        assert info.value.code == "lobby_quota"


async def test_a_lost_hubs_unjoined_lobby_ends_with_nobody_looking(redis_server: RedisEngine,
                                                                  postgres_server: PostgresEngine) -> None:
    with two_hubs(redis_server, postgres_server, "--max-lobbies-per-address", "1") as (one, two):
        async with connect(two) as ada:
            await ada.hello("Ada")
            lobby = (await ada.create_lobby("left behind"))["id"]
        quota_key = f"voicebot:lqa:{address_key('127.0.0.1')}"
        assert _redis_int(redis_server, "HEXISTS", quota_key, lobby) == 1
        hub_key = f"voicebot:hub:{_stored_meta(redis_server, lobby)['hub']}"
        HUBS[two].kill()
        # Gone from Redis within the hub key's TTL (5 s) and a couple of heartbeats of the surviving hub, though
        # no client lists lobbies or creates one meanwhile.
        await _until(lambda: not _redis_int(redis_server, "EXISTS", f"voicebot:lobby:{lobby}"), 5.0 + 3.0)
        assert _redis_int(redis_server, "EXISTS", hub_key) == 0  # not before the hub's key expired
        assert _redis_int(redis_server, "ZCARD", "voicebot:lobbies") == 0
        assert _redis_int(redis_server, "HEXISTS", quota_key, lobby) == 0  # its creator's place is back
        assert _redis_int(redis_server, "EXISTS", f"voicebot:closed:{lobby}") == 1  # tombstoned
        async with connect(one) as again:
            await again.hello("Ada again")
            await again.create_lobby("in the freed place")


async def test_a_lost_hubs_lobby_ends_once_its_last_member_is_lost(redis_server: RedisEngine,
                                                                   postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, "--max-lobbies-per-address", "2", count=3) as (one, two, three):
        async with connect(three) as ada:
            await ada.hello("Ada")
            lobby = (await ada.create_lobby("handed on"))["id"]
        async with connect(two) as bob:
            await bob.hello("Bob")
            await bob.join(lobby)
            HUBS[three].kill()  # the creating hub: Bob (on hub two) keeps the lobby
            await trio.sleep(5.0 + 2.0)
            meta = _stored_meta(redis_server, lobby)
            # Hub two answers for it now (its key is one of the two live hubs'; hub three's expired).
            assert _redis_int(redis_server, "EXISTS", f"voicebot:hub:{meta['hub']}") == 1
            assert _redis_int(redis_server, "ZCARD", f"voicebot:hublobs:{meta['hub']}") == 1
            HUBS[two].kill()  # Bob's connection is cut: his session outlives his hub by the resume grace (2 s)
        await _until(lambda: not _redis_int(redis_server, "EXISTS", f"voicebot:lobby:{lobby}"), 5.0 + 2.0 + 3.0)
        quota_key = f"voicebot:lqa:{address_key('127.0.0.1')}"
        assert _redis_int(redis_server, "HEXISTS", quota_key, lobby) == 0
        assert _redis_int(redis_server, "ZCARD", "voicebot:lobbies") == 0
        assert _redis_int(redis_server, "SCARD", "voicebot:lobhubs") == 0  # the lost hubs' indexes are gone
        async with connect(one) as again:
            await again.hello("Ada again")
            for i in range(2):  # both places of the address are free
                await again.create_lobby(f"freed {i}")
