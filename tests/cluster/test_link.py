"""The cluster's Redis link against a real ``redis-server``: the admit script's cluster-wide cap, dead hubs'
members pruned, a lost hub's lobbies swept by the other hubs' heartbeats (within a budget per heartbeat), and
every call behind the ``cluster.redis`` fault point and the ``cluster`` breaker."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import pytest
import trio
from coredis.exceptions import ConnectionError as RedisConnectionError

from voicebot import faults
from voicebot.cluster._link import RedisLink, member_json
from voicebot.errors import VoiceBotError
from voicebot.resilience import BreakerRegistry, CircuitState
from voicebot.testing import RedisEngine

from ._scripts import script_link

pytestmark = pytest.mark.slow


def _meta(lobby_id: str, max_members: int) -> str:
    return json.dumps({"id": lobby_id, "name": lobby_id, "private": False, "password_hash": None,
                       "max_members": max_members, "persistent": False, "created": 0.0})


async def test_admit_holds_the_cap_and_prunes_dead_hubs(redis_server: RedisEngine) -> None:
    async with script_link(redis_server) as link:
        lobby_key, members_key = link.lobby_keys("l_cap")
        await link.call("setup", lambda r: r.set(lobby_key, _meta("l_cap", 5)))
        for hub in ("alive1", "alive2"):
            key = link.hub_key(hub)
            await link.call("setup", lambda r: r.set(key, "1"))  # noqa: B023 - awaited in this iteration
        # a member of a hub whose key expired holds no place
        await link.call("setup", lambda r: r.hset(members_key, {"p_ghost": member_json({"peer_id": "p_ghost"},
                                                                                          "dead")}))
        results: list[str] = []

        async def admit(i: int) -> None:
            hub = f"alive{i % 2 + 1}"
            result = await link.script("admit", f"p_{i}", member_json({"peer_id": f"p_{i}"}, hub), "l_cap", 60,
                                       "", "", 0)  # no resumable session to store
            results.append(result[0])

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(admit, i)
        assert results.count("ok") == 5 and results.count("full") == 15
        members = await link.call("read", lambda r: r.hgetall(members_key))
        assert len(members) == 5 and "p_ghost" not in members
        seqs = sorted(json.loads(v)["seq"] for v in members.values())
        assert len(set(seqs)) == 5  # join order is recorded
        ttl = await link.call("ttl", lambda r: r.ttl(members_key))
        assert 0 < ttl <= 60


async def test_fault_point_and_breaker(redis_server: RedisEngine) -> None:
    redis_server.command("FLUSHALL")
    breakers = BreakerRegistry()
    link = RedisLink(redis_server.url, breakers)
    outage = faults.Plan(rules=[faults.Rule(point="cluster.redis", first=1, last=3,
                                            fault=faults.raises(RedisConnectionError, "injected"))])
    async with AsyncExitStack() as stack:
        await link.open(stack)
        with faults.activate(outage, seed=1) as run:
            for _ in range(3):
                with pytest.raises(VoiceBotError) as info:
                    await link.call("ping", lambda r: r.ping())
                assert info.value.code == "cluster_unavailable" and info.value.retryable
            assert str(link.breaker.state) == str(CircuitState.OPEN)
            with pytest.raises(VoiceBotError) as info:  # open: refused at once, with when to retry
                await link.call("ping", lambda r: r.ping())
            assert info.value.code == "cluster_unavailable" and info.value.retry_after
            assert link.failures == 4
            await trio.sleep(1.1)  # wait_duration_in_open_state: a probe goes through and closes it
            assert await link.call("ping", lambda r: r.ping())
            assert link.breaker.state == CircuitState.CLOSED
            fired = [fields for _, kind, fields in run.journal.entries() if fields.get("point") == "cluster.redis"]
            assert len(fired) >= 3, run.journal.getvalue()


async def test_heartbeats_sweep_a_lost_hubs_lobbies_within_a_budget(redis_server: RedisEngine) -> None:
    async with script_link(redis_server) as link:
        ids = [f"l_{i:04d}" for i in range(25)]
        for lobby_id in ids:  # created by hub "gone" (whose key does not exist), for peer p_ada
            meta = json.loads(_meta(lobby_id, 4)) | {"owner": ["addr", "p_ada"], "hub": "gone"}
            assert await link.script("create", lobby_id, json.dumps(meta), 60, 0, 0) == ["ok"]
        joined = ids[0]  # one has a member on the live hub "h1": it is handed to that hub, not ended
        await link.script("admit", "p_bob", member_json({"peer_id": "p_bob"}, "h1"), joined, 60, "", "", "")

        def count(*command: str) -> int:
            return int(redis_server.command(*command)[1:].strip())

        empty = json.dumps({"lobbies": [], "sessions": [], "bots": {}, "jobs": []})
        left = []
        for _ in range(3):
            await link.script("tick", "h1", 5, empty, 5000, 60, 10)  # a budget of 10 lobbies per heartbeat
            left.append(count("ZCARD", "voicebot:hublobs:gone"))
        assert left == [15, 5, 0]
        assert count("ZCARD", "voicebot:lobbies") == 1 and count("HLEN", "voicebot:lqp:p_ada") == 1
        assert count("EXISTS", "voicebot:closed:" + ids[1]) == 1  # ended lobbies are tombstoned
        assert json.loads(await link.call("get", lambda r: r.get(f"voicebot:lobby:{joined}")))["hub"] == "h1"
        assert count("ZCARD", "voicebot:hublobs:h1") == 1 and count("SISMEMBER", "voicebot:lobhubs", "gone") == 0
        await link.script("leave", "p_bob", joined, 60)  # its last member leaves: it ends as any lobby does
        assert count("ZCARD", "voicebot:lobbies") == 0 and count("ZCARD", "voicebot:hublobs:h1") == 0
