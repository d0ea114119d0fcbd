#!/usr/bin/env python
"""Write-through benchmark: how long a message buffered for a peer in grace takes to be safe in Redis.

Starts one ``redis-server`` and one PostgreSQL cluster (loopback, free ports, temporary folders; or uses
``--redis-url``/``--db-url``) and two real ``voicebot serve --cluster`` hubs. Bob joins a lobby on hub two and
disconnects: he is in his resume grace there, and every message for him is buffered by hub two and copied to
``buf:{bob}`` in Redis (see ``voicebot/cluster/_writethrough.py``). Ada (on hub one: through hub two's inbox) and
Cy (on hub two: from its own memory) send ``--messages`` chats each at ``--rate`` per second; for each one the
time from the send to its copy showing in Redis (``LLEN buf:{bob}`` polled on a connection of its own) is
recorded. Until a message is copied, a kill -9 of hub two would lose it if it came from Cy (from Ada it is still
in hub two's inbox, which is trimmed only with the copy).

Table on stdout (p50/p90/p99/max per sender, the hubs' copy counters); ``--json PATH`` (or ``-``) writes every
figure. Example::

    .venv/bin/python scripts/bench_writethrough.py --messages 200 --rate 50
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import trio
from benchmarks.procstats import percentiles
from benchmarks.report import emit, machine_info

from voicebot.client import Client, connect
from voicebot.testing import EngineUnavailable, run_postgres, run_redis, serve_process

ADMIN = "bench-admin"


def _quantiles(values: list[float]) -> dict[str, Any]:
    """Count and percentiles (nearest rank, :func:`benchmarks.procstats.percentiles`) of latencies in seconds,
    in ms."""
    nanoseconds = [round(v * 1e9) for v in values]
    return {"n": len(values), **{f"{k}_ms": v for k, v in percentiles(nanoseconds).items()}}


async def _copied_after(redis: Any, key: str, count: int, deadline: float) -> float:
    """Poll ``LLEN key`` until it reaches ``count``; the moment it did (``time.perf_counter``)."""
    while await redis.llen(key) < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{key} did not reach {count} messages within the deadline")
    return time.perf_counter()


async def bench(args: argparse.Namespace, redis_url: str, db: str) -> dict[str, Any]:
    """Two hubs, Bob in grace on hub two, Ada and Cy sending; the send → copy latency of every message."""
    import coredis  # noqa: PLC0415 - the cluster extra's client

    hub_args = ("--cluster", redis_url, "--db", db, "--local-worker", "0", "--resume-grace", "300",
                "--resume-buffer", str(4 * args.messages + 16), "--resume-buffer-bytes", "67108864",
                "--admin-token", ADMIN, "--request-rate", "100000", "--request-burst", "100000",
                "--request-rate-per-address", "0")
    latencies: dict[str, list[float]] = {"remote (through the inbox)": [], "local (from the hub's memory)": []}
    with ExitStack() as stack:
        _, one = stack.enter_context(serve_process(*hub_args))
        _, two = stack.enter_context(serve_process(*hub_args))
        redis = coredis.Redis.from_url(redis_url, decode_responses=True)
        async with redis, connect(one) as ada, connect(two) as cy, connect(two) as admin:
            await ada.hello("Ada")
            await cy.hello("Cy")
            await admin.hello("Root", admin_token=ADMIN)
            lobby = await ada.create_lobby("bench", max_members=8)
            await ada.join(lobby["id"])
            await cy.join(lobby["id"])
            async with connect(two) as bob:
                await bob.hello("Bob")
                await bob.join(lobby["id"])
                key = f"voicebot:buf:{bob.peer_id}"
            await trio.sleep(1.0)  # hub two has seen Bob's socket close: he is in grace there
            copied = int(await redis.llen(key))
            senders: list[tuple[str, Client]] = list(zip(latencies, (ada, cy), strict=True))
            for i in range(args.messages):
                for label, client in senders:
                    start = time.perf_counter()
                    await client.chat(f"{label} {i}")
                    copied += 1
                    latencies[label].append(await _copied_after(redis, key, copied, start + 10) - start)
                    await trio.sleep(1 / args.rate if args.rate > 0 else 0)
            stats = (await admin.request("admin.stats"))["stats"]["cluster"]
    return {"benchmark": "writethrough", "started": args.started, "machine": machine_info(),
            "messages": args.messages, "rate": args.rate,
            "results": [{"sender": label, **_quantiles(values)} for label, values in latencies.items()],
            "hub_two": {k: stats.get(k) for k in ("copies", "copied", "inbox_overflow")}}


def render(report: dict[str, Any]) -> str:
    """The report as a table."""
    lines = [f"write-through: {report['messages']} messages per sender at {report['rate']}/s each "
             f"(load {os.getloadavg()[0]:.1f})",
             f"{'sender':32} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    for r in report["results"]:
        lines.append(f"{r['sender']:32} {r['n']:>5} {r['p50_ms']:>8} {r['p90_ms']:>8} {r['p99_ms']:>8} "
                     f"{r['max_ms']:>8}")
    lines.append(f"hub two: {json.dumps(report['hub_two'])}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="chats per sender (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="chats per second per sender (0: at once)")
    parser.add_argument("--redis-url", default="", help="use this Redis (flushed) instead of starting one")
    parser.add_argument("--db-url", default="", help="PostgreSQL database for the hubs (with --redis-url)")
    parser.add_argument("--json", default=None, help="write the report as JSON to PATH ('-': stdout)")
    args = parser.parse_args(argv)
    if bool(args.redis_url) != bool(args.db_url):
        parser.error("--redis-url and --db-url go together")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start the engines (unless given), run, print the table (and the JSON)."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    args.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        if args.redis_url:
            report = trio.run(bench, args, args.redis_url, args.db_url)
        else:
            with run_redis() as redis, run_postgres() as postgres:
                report = trio.run(bench, args, redis.url, postgres.new_database("bench"))
    except EngineUnavailable as exc:
        print(f"bench_writethrough: {exc}", file=sys.stderr)
        return 2
    return emit(report, render(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
