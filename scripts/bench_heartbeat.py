"""What one cluster heartbeat costs with many sessions: Redis round trips and milliseconds per heartbeat.

Starts a throw-away ``redis-server`` and PostgreSQL (``voicebot.testing``), one in-process hub in cluster mode, and
``--sessions`` in-memory clients in lobbies of ``--per-lobby``; then, over ``--seconds``, counts the hub's Redis
calls (round trips, by kind, as the hub makes them) and the commands Redis ran (``INFO commandstats``, those run
inside scripts included), and times each heartbeat's ``tick`` call as the hub sees it (building its payload
excluded) and inside Redis (EVALSHA time). With ``--lost-lobbies N``, N unjoined lobbies of a hub that is gone
are registered first: each heartbeat then also sweeps up to 100 of them (what a hub's loss costs the others).
Run:

    .venv/bin/python scripts/bench_heartbeat.py --sessions 1000 --per-lobby 10 --seconds 10
    .venv/bin/python scripts/bench_heartbeat.py --sessions 0 --lost-lobbies 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from functools import partial
from typing import Any

import coredis
import trio

from voicebot.testing import open_client, open_test_server, run_postgres, run_redis, settings_for_tests

#: Calls the hub's inbox reader makes on its own schedule (reading and trimming its inbox): delivery, not heartbeat.
INBOX_CALLS = frozenset({"xread", "xtrim", "xrevrange"})


def _commandstats(info: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` as parsed by coredis → {command: (calls, usec)}."""
    return {name[len("cmdstat_"):]: (int(v["calls"]), int(v["usec"])) for name, v in info.items()
            if name.startswith("cmdstat_")}


async def main(sessions: int, per_lobby: int, seconds: float, redis_url: str | None = None,
               db_url: str | None = None, *, lost_lobbies: int = 0) -> dict[str, Any]:
    """Run the measurement (on the given Redis and PostgreSQL database, else on throw-away ones)."""
    with ExitStack() as engines:
        if redis_url is None:
            redis_url = engines.enter_context(run_redis()).url
        if db_url is None:
            db_url = engines.enter_context(run_postgres()).new_database("beat")
        return await _measure(sessions, per_lobby, seconds, redis_url, db_url, lost_lobbies=lost_lobbies)


async def _register_lost(cluster: Any, count: int) -> None:
    """``count`` unjoined lobbies created by a hub whose key does not exist (a lost hub), as its creates did."""
    for i in range(count):
        lobby_id = f"l_lost{i:08d}"
        meta = {"id": lobby_id, "name": "lost", "private": False, "password_hash": None, "max_members": 2,
                "persistent": False, "created": 0.0, "owner": ["lost", f"p_lost{i}"], "hub": LOST_HUB}
        await cluster.link.script("create", lobby_id, json.dumps(meta), 300, 0, 0)


LOST_HUB = "lost0000hub"


async def _measure(sessions: int, per_lobby: int, seconds: float, redis_url: str, db_url: str, *,
                   lost_lobbies: int = 0) -> dict[str, Any]:
    redis = coredis.Redis.from_url(redis_url, decode_responses=True)
    async with redis:
        settings = settings_for_tests(db=db_url, cluster=redis_url,
                                      max_connections_per_address=0, connection_rate_per_address=0,
                                      request_rate_per_address=0, max_lobbies_per_address=0, max_lobbies_per_peer=0,
                                      outbox_bytes_per_address=0)
        async with open_test_server(settings) as server, trio.open_nursery() as nursery:
            cluster = server.cluster
            assert cluster is not None
            lobby_id = [""]

            async def member(i: int, task_status: trio.TaskStatus[None]) -> None:
                async with open_client(server, f"p{i}") as client:
                    if i % per_lobby == 0:
                        lobby_id[0] = (await client.create_lobby(f"l{i}", max_members=per_lobby))["id"]
                    await client.join(lobby_id[0])
                    task_status.started()
                    await trio.sleep_forever()

            for i in range(sessions):
                await nursery.start(member, i)
            timings: list[float] = []
            calls: dict[str, int] = {}
            script, call = cluster.link.script, cluster.link.call

            async def counted(what: str, fn: Any, **options: Any) -> Any:
                if what not in INBOX_CALLS:  # the inbox reader's own reads and trims are delivery, not heartbeat
                    calls[what] = calls.get(what, 0) + 1
                return await call(what, fn, **options)

            async def timed(name: str, *args: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await script(name, *args)
                finally:
                    if name == "tick":
                        timings.append(time.perf_counter() - start)

            await _register_lost(cluster, lost_lobbies)
            cluster.link.script = timed  # type: ignore[method-assign]
            cluster.link.call = counted  # type: ignore[method-assign]
            if not lost_lobbies:
                await trio.sleep(2 * cluster.heartbeat)
            timings.clear()
            calls.clear()
            await redis.config_resetstat()
            await trio.sleep(seconds)
            stats = _commandstats(await redis.info("commandstats"))
            lost_left = await redis.zcard(f"voicebot:hublobs:{LOST_HUB}")
            ticks, hub_calls = list(timings), dict(calls)  # a heartbeat under way now is not timed
            cluster.link.script, cluster.link.call = script, call  # type: ignore[method-assign]
            nursery.cancel_scope.cancel()  # the clients just go (a thousand closing handshakes are not measured)
    beats = len(ticks)
    evalsha_calls, evalsha_usec = stats.get("evalsha", (0, 0))
    return {
        "sessions": sessions, "lobbies": -(-sessions // per_lobby), "heartbeats": beats,
        "round_trips_per_heartbeat": round(sum(hub_calls.values()) / max(beats, 1), 2),
        "hub_calls": hub_calls,
        "redis_commands_per_heartbeat": {k: round(n / max(beats, 1), 1) for k, (n, _) in sorted(stats.items())
                                         if not k.startswith("config")},
        "tick_ms_p50": round(statistics.median(ticks) * 1000, 2) if ticks else None,
        "tick_ms_max": round(max(ticks) * 1000, 2) if ticks else None,
        "redis_ms_per_evalsha": round(evalsha_usec / max(evalsha_calls, 1) / 1000, 2),
        "lost_lobbies": lost_lobbies, "lost_lobbies_left": lost_left,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--per-lobby", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--lost-lobbies", type=int, default=0,
                        help="unjoined lobbies of a lost hub, registered first (swept by the heartbeats)")
    parser.add_argument("--redis-url", help="a running Redis to use (default: start a throw-away one)")
    parser.add_argument("--db-url", help="an empty PostgreSQL database to use (default: a throw-away server)")
    args = parser.parse_args()
    print(json.dumps(trio.run(partial(main, lost_lobbies=args.lost_lobbies), args.sessions, args.per_lobby,
                              args.seconds, args.redis_url, args.db_url), indent=2))
