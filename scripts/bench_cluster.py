#!/usr/bin/env python
"""Cluster benchmark: relay throughput and latency with 1 hub vs 2 hubs, same-hub vs cross-hub pairs.

Starts one ``redis-server`` and one PostgreSQL cluster (``voicebot.testing.run_redis``/``run_postgres``: loopback,
free ports, temporary folders) and, for each set-up in ``--configs``, real ``voicebot serve`` processes
(``--cluster redis://… --db postgresql://…``, a fresh database each, per-address quotas lifted), then the relay
load generator of ``scripts/bench_relay.py`` (N raw WebSocket clients in lobbies sending timestamped ``signal``
messages to peers of their lobby; the receiver measures end-to-end latency) with its clients spread over the hubs:

- ``single``: one hub without ``--cluster`` (SQLite in memory), the single-process baseline;
- ``1hub``: one hub in cluster mode (every lobby's state goes through Redis, no message crosses hubs);
- ``2hub-same``: two hubs, each lobby entirely on one hub (half the lobbies on each): no message crosses hubs;
- ``2hub-cross``: two hubs, each lobby's members alternate between hubs and every message goes to a peer on the
  other hub (published to Redis, read from the other hub's channel).

Hubs' CPU (summed over the hub processes) per delivered message, redis-server's CPU (when this script started
it), RSS per hub, the rest of the machine's CPU
and the load average before and after each set-up are reported: on a small shared machine the two hubs, the
load generator and Redis compete for the same cores, so 2 hubs cannot show more throughput than the cores
allow. Table on stdout; ``--json PATH`` (or ``-``) writes every figure.

Examples::

    .venv/bin/python scripts/bench_cluster.py --clients 200 --rate 10 --duration 10
    .venv/bin/python scripts/bench_cluster.py --clients 200 --rate 0 --configs 2hub-same,2hub-cross --json out.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio
from benchmarks.cluster import CONFIGS, render, run_config
from benchmarks.load import add_load_arguments
from benchmarks.report import emit, machine_info
from benchmarks.servers import raise_nofile

from voicebot.testing import EngineUnavailable, PostgresEngine, RedisEngine, run_postgres, run_redis


async def bench(args: argparse.Namespace, redis: RedisEngine | None, postgres: PostgresEngine | None) -> dict[str, Any]:
    """Run every chosen set-up in turn (on engines of our own: Redis flushed and a fresh database for each)."""
    results = []
    for key in args.configs:
        config = CONFIGS[key]
        if redis is not None:
            redis.command("FLUSHALL")
        redis_url = redis.url if redis is not None else args.redis_url
        db = args.db_url
        if postgres is not None:
            db = await trio.to_thread.run_sync(postgres.new_database, "bench")
        redis_pid = redis.process.pid if redis is not None else None
        results.append(await run_config(config, db if config.cluster else ":memory:", redis_url, args, redis_pid))
        await trio.sleep(1.0)  # let TIME_WAIT sockets and the stopped hubs settle
    return {
        "benchmark": "voicebot cluster relay", "started": args.started, "machine": machine_info(),
        "parameters": {k: getattr(args, k) for k in (
            "clients", "lobbies", "rate", "window", "duration", "warmup", "drain", "size", "seed", "configs",
            "outbox_size")},
        "results": results,
    }


def _configs(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [k for k in keys if k not in CONFIGS]
    if not keys or unknown:
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(CONFIGS)}")
    return keys


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (the load's options are bench_relay's)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=_configs, default=list(CONFIGS),
                        help=f"comma-separated set-ups (default all: {','.join(CONFIGS)})")
    add_load_arguments(parser, clients=200, rate=10.0)
    parser.add_argument("--redis-url", metavar="URL",
                        help="use this Redis (with --db-url) instead of starting a redis-server of our own")
    parser.add_argument("--db-url", metavar="URL",
                        help="use this PostgreSQL database (with --redis-url) instead of starting a cluster")
    parser.add_argument("--profile", metavar="DIR",
                        help="run each hub under cProfile and write DIR/<set-up>-<hub>.prof (slows the hubs down)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': stdout)")
    args = parser.parse_args(argv)
    if bool(args.redis_url) != bool(args.db_url):
        parser.error("--redis-url and --db-url go together")
    if args.lobbies is None:
        args.lobbies = max(1, args.clients // 10)
    if args.clients < 4 or args.lobbies < 1 or args.duration <= 0 or args.rate < 0:
        parser.error("need --clients >= 4, --lobbies >= 1, --duration > 0, --rate >= 0")
    per_lobby_min, per_lobby_max = args.clients // args.lobbies, math.ceil(args.clients / args.lobbies)
    if per_lobby_min < 2 or per_lobby_max > 64:
        parser.error(f"{args.clients} clients in {args.lobbies} lobbies gives {per_lobby_min}..{per_lobby_max} "
                     "per lobby; the hub allows 2..64 (max_members)")
    # sweep mode is bench_relay's; the shared load generator reads these
    args.sweep, args.slo_p99_ms = [], 100.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start the engines, run the set-ups, print the table (and the JSON); 1 if a set-up failed or lost messages."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    args.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    need = args.clients + 64
    if raise_nofile(need) < need:
        print(f"bench_cluster: {args.clients} clients need about {need} file descriptors (RLIMIT_NOFILE is lower; "
              "raise it with `ulimit -n`)", file=sys.stderr)
        return 2
    try:
        if args.redis_url:
            report = trio.run(bench, args, None, None)
        else:
            with run_redis() as redis, run_postgres() as postgres:
                report = trio.run(bench, args, redis, postgres)
    except EngineUnavailable as exc:
        print(f"bench_cluster: {exc}", file=sys.stderr)
        return 2
    report["machine"]["loadavg_after"] = os.getloadavg()
    return emit(report, render(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
