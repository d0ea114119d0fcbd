"""``voicebot chaos``: run the chaos suite over many seeds, or replay one.

``voicebot chaos --seeds 1000`` runs seeds 0..999; ``--seed N`` starts there (alone: runs only N);
``--plan FILE`` uses a TOML/JSON plan instead of the built-in random plan over every point. A progress
line is kept on one line on a terminal (periodic lines otherwise); the summary table lists seeds run,
failures, seeds per minute, injections by point and kind and errors by code. For each failing seed the
replay command and the first violated invariant are printed; the exit code is 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from voicebot import faults
from voicebot.server import Server

from ._defaults import DEFAULT_CLIENTS, DEFAULT_STEPS

if TYPE_CHECKING:
    from ._runner import ChaosConfig, SeedResult

__all__ = ["add_parser", "main_chaos", "render_summary"]

PERIODIC_EVERY = 100
"""Without a terminal, a progress line is printed every this many seeds."""
DEFAULT_JOBS = max(1, min(os.cpu_count() or 1, 8))
"""Worker processes by default: one per CPU (at most 8)."""
POOL_MIN_SEEDS = 50
"""Fewer seeds run in this process (starting workers costs about a second)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``chaos`` subcommand (an entry of ``voicebot.cli.SUBCOMMANDS``)."""
    parser = sub.add_parser(
        "chaos", help="run the chaos suite (simulated clients under random faults, invariants checked)",
        description="Run seeded chaos workloads against an in-process server under a fault plan; "
                    "the same seed and plan replay the same run.",
    )
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="how many seeds to run, starting at --seed or 0 (default 1000; 1 with --seed)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="run only / start at this seed")
    parser.add_argument("--plan", default=None, metavar="FILE",
                        help="TOML/JSON fault plan (default: built-in random plan over all points)")
    parser.add_argument("--journal", default=None, metavar="FILE",
                        help="write the journal of the last seed run here (useful with --seed)")
    parser.add_argument("--clients", type=int, default=None,
                        help=f"simulated clients per seed (default {DEFAULT_CLIENTS}; 8 with --hubs)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"workload steps per seed (default {DEFAULT_STEPS}; 60 with --hubs)")
    parser.add_argument("--hubs", type=int, default=None, metavar="N",
                        help="run the multi-hub workload instead: N hubs in cluster mode over a real redis-server "
                             "and PostgreSQL (started for the run), one hub lost mid-run, a Redis outage window "
                             "(default 10 seeds)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N",
                        help=f"worker processes for {POOL_MIN_SEEDS}+ seeds (default {DEFAULT_JOBS}, the CPU count); "
                             "each seed runs alone in one process, so results and journals do not depend on N")
    parser.set_defaults(run=main_chaos)


def main_chaos(
    args: argparse.Namespace, out: TextIO | None = None, *, server_factory: Callable[..., Server] | None = None
) -> int:
    """Run the seeds ``args`` selects; returns the exit code (0 all passed, 1 a seed failed, 2 bad usage).

    ``server_factory`` (tests only) replaces :class:`~voicebot.chaos.ChaosServer`, e.g. to plant a bug.
    """
    out = out if out is not None else sys.stdout
    if getattr(args, "hubs", None) is not None:
        from ._cluster_cli import main_cluster_chaos  # noqa: PLC0415

        _quiet()
        return main_cluster_chaos(args, out)
    args = argparse.Namespace(**{**vars(args), "clients": DEFAULT_CLIENTS if args.clients is None else args.clients,
                                 "steps": DEFAULT_STEPS if args.steps is None else args.steps})
    start = args.seed if args.seed is not None else 0
    count = args.seeds if args.seeds is not None else (1 if args.seed is not None else 1000)
    jobs = getattr(args, "jobs", DEFAULT_JOBS)
    if count < 1 or args.clients < 1 or args.steps < 1 or jobs < 1:
        print("voicebot chaos: --seeds, --clients, --steps and --jobs must be >= 1", file=sys.stderr)
        return 2
    plan: faults.Plan | None = None
    plan_path: Path | None = None
    if args.plan is not None:
        plan_path = Path(args.plan)
        try:
            plan = faults.load_plan(plan_path)
        except faults.PlanError as exc:
            print(f"voicebot chaos: {exc}", file=sys.stderr)
            return 2
    _quiet()
    from ._runner import ChaosConfig, run_seed  # noqa: PLC0415 - the runner (trio.testing, pytest) loads on use

    config = ChaosConfig(clients=args.clients, steps=args.steps)
    if server_factory is not None:
        config = attrs.evolve(config, server_factory=server_factory)
    tty = out.isatty()
    failures: list[SeedResult] = []
    injections: collections.Counter[tuple[str, str]] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    began = time.perf_counter()  # wall time only for the seeds/min report, never inside a run
    last: SeedResult | None = None
    with contextlib.ExitStack() as stack:
        results: Iterator[SeedResult]
        seeds = range(start, start + count)
        if jobs > 1 and count >= POOL_MIN_SEEDS:
            pool = stack.enter_context(_spawn_pool(jobs))
            results = pool.imap(functools.partial(_run_one, plan=plan, config=config, plan_path=plan_path), seeds,
                                chunksize=4)
        else:
            results = (run_seed(seed, plan, config=config, plan_path=plan_path) for seed in seeds)
        for index, last in enumerate(results, start=1):
            _tally(last, index, count, tty=tty, began=began, out=out, failures=failures, injections=injections,
                   errors=errors)
    if tty:
        out.write("\n")
    elapsed = time.perf_counter() - began
    if args.journal is not None and last is not None:
        Path(args.journal).write_text(last.journal, encoding="utf-8", newline="\n")
    out.write(render_summary(count, failures, elapsed, injections, errors))
    sizing = "".join(f" --{name} {value}" for name, value in (("clients", args.clients), ("steps", args.steps))
                     if value != {"clients": DEFAULT_CLIENTS, "steps": DEFAULT_STEPS}[name])
    for result in failures:
        out.write(f"FAILED seed {result.seed}: {result.first_violation}\n  replay: {result.replay}{sizing}\n")
        if result.traceback:
            out.write("  " + result.traceback.replace("\n", "\n  ").rstrip() + "\n")
    out.flush()
    return 1 if failures else 0


def _quiet() -> None:
    logging.getLogger("voicebot").setLevel(logging.CRITICAL + 1)  # the errors are counted, not printed


def _run_one(seed: int, *, plan: faults.Plan | None, config: ChaosConfig, plan_path: Path | None) -> SeedResult:
    from ._runner import run_seed  # noqa: PLC0415

    return run_seed(seed, plan, config=config, plan_path=plan_path)


def _tally(
    last: SeedResult, index: int, count: int, *, tty: bool, began: float, out: TextIO, failures: list[SeedResult],
    injections: collections.Counter[tuple[str, str]], errors: collections.Counter[str],
) -> None:
    injections.update(last.injections)
    errors.update(last.errors)
    if not last.ok:
        failures.append(last)
    if tty or index % PERIODIC_EVERY == 0 or index == count:
        line = _progress(index, count, last.seed, len(failures), time.perf_counter() - began)
        out.write(("\r" + line) if tty else (line + "\n"))
        out.flush()


def _progress(done: int, total: int, seed: int, failed: int, elapsed: float) -> str:
    rate = done / elapsed * 60 if elapsed > 0 else 0.0
    return f"chaos: {done}/{total} seeds (seed {seed}), {failed} failed, {rate:,.0f} seeds/min"


def render_summary(
    seeds: int, failures: list[SeedResult], elapsed: float,
    injections: collections.Counter[tuple[str, str]], errors: collections.Counter[str],
) -> str:
    """The summary table printed after a run."""
    rate = seeds / elapsed * 60 if elapsed > 0 else 0.0
    rows = [
        ("seeds run", f"{seeds}"), ("failures", f"{len(failures)}"),
        ("seeds/min", f"{rate:,.0f}"), ("wall time", f"{elapsed:.1f} s"),
    ]
    lines = ["", "summary", "-------"]
    lines += [f"  {name:<30} {value:>10}" for name, value in rows]
    lines += ["", "injections by point and kind", "----------------------------"]
    for (point, kind), n in sorted(injections.items()):
        lines.append(f"  {point + ' / ' + kind:<30} {n:>10}")
    if not injections:
        lines.append("  (none)")
    lines += ["", "errors by code", "--------------"]
    for code, n in sorted(errors.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {code:<30} {n:>10}")
    if not errors:
        lines.append("  (none)")
    return "\n".join(lines) + "\n\n"


def _spawn_pool(jobs: int) -> Any:
    """A pool of ``jobs`` spawned processes for a parallel chaos run (multiprocessing loads only for one)."""
    import multiprocessing  # noqa: PLC0415 - only a parallel chaos run needs it, not every voicebot command

    return multiprocessing.get_context("spawn").Pool(jobs, initializer=_quiet)
