"""``voicebot chaos --hubs N``: the multi-hub workload over a real ``redis-server`` and PostgreSQL.

Both engines are started for the run (``voicebot.testing.run_redis``/``run_postgres``: loopback, free ports,
temporary folders; Debian's ``redis-server`` and ``postgresql`` packages must be installed); every seed gets a
fresh database and a flushed Redis. Seeds run one after the other in this process (each takes seconds of real
time). Prints one line per seed, a summary and, for each failing seed, its first violated invariant and the
command that replays its schedule.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import TextIO

import attrs

from ._cluster_plan import ClusterChaosConfig
from ._cluster_run import ClusterSeedResult, run_cluster_seed

__all__ = ["main_cluster_chaos"]


def main_cluster_chaos(args: argparse.Namespace, out: TextIO) -> int:
    """Run the seeds ``args`` selects on ``args.hubs`` hubs; 0 all passed, 1 a seed failed, 2 bad usage or no
    engines."""
    from voicebot.testing import EngineUnavailable, run_postgres, run_redis  # noqa: PLC0415

    try:
        config = ClusterChaosConfig(hubs=args.hubs)
        sizing = {k: v for k, v in (("clients", args.clients), ("steps", args.steps)) if v is not None}
        config = attrs.evolve(config, **sizing)
    except ValueError as exc:
        print(f"voicebot chaos: {exc} (--hubs 2..8, --clients >= 2, --steps >= 10)", file=sys.stderr)
        return 2
    start = args.seed if args.seed is not None else 0
    count = args.seeds if args.seeds is not None else (1 if args.seed is not None else 10)
    failures: list[ClusterSeedResult] = []
    checks: collections.Counter[str] = collections.Counter()
    began = time.perf_counter()
    last: ClusterSeedResult | None = None
    try:
        with run_redis() as redis, run_postgres() as postgres:
            for seed in range(start, start + count):
                last = run_cluster_seed(seed, redis=redis, db_url=postgres.new_database("chaos"), config=config)
                checks.update(last.checks)
                if not last.ok:
                    failures.append(last)
                out.write(f"chaos --hubs {config.hubs}: seed {seed}: {'ok' if last.ok else 'FAILED'} in "
                          f"{last.seconds:.1f} s ({sum(last.actions.values())} steps, "
                          f"{last.checks.get('membership checkpoints', 0)} membership checkpoints, "
                          f"{last.checks.get('chat deliveries verified', 0)} chat deliveries verified)\n")
                out.flush()
    except EngineUnavailable as exc:
        print(f"voicebot chaos: {exc}", file=sys.stderr)
        return 2
    if args.journal is not None and last is not None:
        Path(args.journal).write_text(last.schedule + last.journal, encoding="utf-8", newline="\n")
    elapsed = time.perf_counter() - began
    out.write(f"\nsummary: {count} seeds on {config.hubs} hubs, {len(failures)} failed, {elapsed:.1f} s; "
              + ", ".join(f"{name} {n}" for name, n in sorted(checks.items())) + "\n")
    extra = "".join(f" --{name} {value}" for name, value in sizing.items())
    for result in failures:
        out.write(f"FAILED seed {result.seed}: {result.first_violation}\n"
                  f"  replay: voicebot chaos --hubs {config.hubs} --seed {result.seed}{extra}\n")
    out.flush()
    return 1 if failures else 0
