"""Store latency and throughput on SQLite (file, synchronous=FULL) and PostgreSQL (fsync on), same operations.

Starts a throw-away PostgreSQL (``voicebot.testing.run_postgres``; Debian's ``postgresql`` package) and times,
per backend: sequential committed writes (``append_audit``), sequential reads (``get_lobby``), and writes from
``--tasks`` concurrent Trio tasks. Prints a table and, with ``--json FILE``, writes the numbers. Run:

    .venv/bin/python scripts/bench_store.py --ops 500 --tasks 8 --json store.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from voicebot.store import PostgresStore, SQLiteStore, Store
from voicebot.testing import run_postgres


async def _timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - start)
    return samples


async def _bench(store: Store, ops: int, tasks: int) -> dict[str, Any]:
    await store.create_lobby("bench", "Bench", max_members=8, persistent=True)
    writes = await _timed(ops, lambda i: store.append_audit("connect", peer_id=str(i)))
    reads = await _timed(ops, lambda i: store.get_lobby("bench"))
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for t in range(tasks):
            async def worker(t: int = t) -> None:
                for i in range(ops // tasks):
                    await store.append_audit("join", peer_id=f"{t}-{i}")
            nursery.start_soon(worker)
    concurrent = (ops // tasks) * tasks / (time.perf_counter() - start)

    def ms(xs: list[float], q: float) -> float:
        return round(statistics.quantiles(xs, n=100)[int(q) - 1] * 1000, 3)

    return {
        "write_p50_ms": ms(writes, 50), "write_p99_ms": ms(writes, 99), "writes_per_s": round(ops / sum(writes)),
        "read_p50_ms": ms(reads, 50), "read_p99_ms": ms(reads, 99), "reads_per_s": round(ops / sum(reads)),
        f"concurrent_writes_per_s_{tasks}_tasks": round(concurrent),
    }


async def main(ops: int, tasks: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with await SQLiteStore.open(Path(tmp) / "bench.db") as sqlite_store:
            results["sqlite"] = await _bench(sqlite_store, ops, tasks)
    with run_postgres() as engine:
        url = await trio.to_thread.run_sync(engine.new_database, "bench")
        async with await PostgresStore.open(url) as pg_store:
            results["postgresql"] = await _bench(pg_store, ops, tasks)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=500, help="operations per measurement")
    parser.add_argument("--tasks", type=int, default=8, help="concurrent writer tasks")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    table = trio.run(main, args.ops, args.tasks)
    keys = list(next(iter(table.values())))
    print(f"{'metric':<34}" + "".join(f"{name:>14}" for name in table))
    for key in keys:
        print(f"{key:<34}" + "".join(f"{table[name][key]:>14}" for name in table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
