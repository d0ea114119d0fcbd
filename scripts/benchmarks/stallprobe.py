"""Run ``voicebot`` (same arguments as the console script) with a probe that finds what stalls its event loop.

``python scripts/benchmarks/stallprobe.py serve ...`` — at exit (SIGTERM: the server shuts down gracefully) it
writes JSON to ``$VOICEBOT_STALL_REPORT`` (default ``stalls.json``):

- ``loop_lag_ms``: how long a callback handed to the loop every 20 ms waited to run (p50/p99/max);
- ``sampler_overslept_over_50ms``: when the sampling thread's own 20 ms sleep overshot (the process, not its loop,
  was waiting for a core or for the interpreter lock);
- ``steps_by_cpu_time``, ``longest_steps_cpu_ms``, ``gc_cpu_ms``: the same by the thread's CPU time, which a
  busy machine does not inflate (wall time includes time the process waited for a core);
- ``steps``: Trio task steps by duration bucket and the longest ones with their task names (a Trio
  ``Instrument`` timing ``before_task_step``/``after_task_step`` on the server's thread);
- ``gc``: collections by generation — count, total and longest pause (``gc.callbacks``);
- ``stacks``: where the server's thread was while a step had already run longer than ``--sample-after`` (a
  sampling thread reads ``sys._current_frames()`` every 5 ms and counts the innermost frames of voicebot,
  trio, wsproto, … code), so a long step names its cause.

Only a benchmarking aid: it patches ``trio.run`` to add the instrument. ``VOICEBOT_SOURCE=/path`` runs the
``voicebot`` package found under that directory instead of the installed one (before/after comparisons).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

import trio

SAMPLE_AFTER = float(os.environ.get("VOICEBOT_STALL_SAMPLE_AFTER", "0.02"))
WATCH_REMOTE = os.environ.get("VOICEBOT_STALL_WATCH", "")
BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class Probe(trio.abc.Instrument):
    """Times task steps on the thread that runs ``trio.run`` and samples its stack during long steps."""

    def __init__(self) -> None:
        self.thread_id = threading.get_ident()
        self.step_started = 0.0
        self.step_task = ""
        self.buckets: Counter[str] = Counter()
        self.longest: list[tuple[float, str, float]] = []
        self.step_cpu_started = 0.0
        self.cpu_buckets: Counter[str] = Counter()
        self.longest_cpu: list[tuple[float, str, float]] = []
        self.gc_cpu: dict[int, list[float]] = {0: [0.0, 0.0], 1: [0.0, 0.0], 2: [0.0, 0.0]}
        self._gc_cpu_started = 0.0
        self.stacks: Counter[str] = Counter()
        self.gc: dict[int, list[float]] = {0: [0, 0.0, 0.0], 1: [0, 0.0, 0.0], 2: [0, 0.0, 0.0]}
        self.gc_long: list[tuple[float, int, float]] = []
        self._gc_started = 0.0
        self.started = time.monotonic()
        self.lags: list[float] = []
        self.long_lags: list[tuple[float, float]] = []
        self.descheduled: list[tuple[float, float]] = []
        self.watched: Counter[str] = Counter()
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._sample, daemon=True, name="stallprobe").start()

    def before_run(self) -> None:
        threading.Thread(target=self._lag, args=(trio.lowlevel.current_trio_token(),), daemon=True,
                         name="stallprobe-lag").start()

    def _lag(self, token: trio.lowlevel.TrioToken) -> None:
        """Every 20 ms: how long a callback waits for the loop (the loop's scheduling latency)."""
        tick = 0
        while True:
            slept = time.perf_counter()
            time.sleep(0.02)
            overshoot = time.perf_counter() - slept - 0.02
            if overshoot >= 0.05:  # this thread could not run: the process waited for a core (or the GIL)
                self.descheduled.append((round(time.time(), 2), round(overshoot * 1000, 1)))
            tick += 1
            if WATCH_REMOTE and tick % 25 == 0:
                try:
                    token.run_sync_soon(self._where_watched_tasks_wait)
                except trio.RunFinishedError:
                    return
            sent = time.perf_counter()
            try:
                token.run_sync_soon(self._lagged, sent)
            except trio.RunFinishedError:
                return

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.step_task = task.name
        self.step_cpu_started = time.thread_time()
        self.step_started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self.step_started
        cpu = time.thread_time() - self.step_cpu_started
        self.step_started = 0.0
        for limit in BUCKETS:
            if cpu < limit:
                self.cpu_buckets[f"<{limit * 1000:g}ms"] += 1
                break
        else:
            self.cpu_buckets[f">={BUCKETS[-1] * 1000:g}ms"] += 1
        if cpu >= 0.01:
            self.longest_cpu.append((round(cpu * 1000, 1), task.name, round(time.time(), 2)))
            if len(self.longest_cpu) > 400:
                self.longest_cpu = sorted(self.longest_cpu, reverse=True)[:200]
        for limit in BUCKETS:
            if took < limit:
                self.buckets[f"<{limit * 1000:g}ms"] += 1
                break
        else:
            self.buckets[f">={BUCKETS[-1] * 1000:g}ms"] += 1
        if took >= 0.02:
            self.longest.append((round(took * 1000, 1), task.name, round(time.time(), 2)))
            if len(self.longest) > 400:
                self.longest = sorted(self.longest, reverse=True)[:200]

    def _lagged(self, sent: float) -> None:
        lag = time.perf_counter() - sent
        self.lags.append(lag)
        if lag >= 0.05:
            self.long_lags.append((round(time.time(), 2), round(lag * 1000, 1)))

    def _where_watched_tasks_wait(self) -> None:
        """Count the await chains of tasks serving a connection from ``WATCH_REMOTE`` (a snapshot every 0.5 s)."""
        todo = [trio.lowlevel.current_root_task()]
        while todo:
            task = todo.pop()
            for nursery in task.child_nurseries:
                todo.extend(nursery.child_tasks)
            chain, watched, coro = [], False, task.coro
            while coro is not None:
                frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                if frame is None:
                    break
                owner = frame.f_locals.get("self")
                if _peer_of(owner).startswith(WATCH_REMOTE):
                    watched = True
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            if watched:
                self.watched[" > ".join(chain[-5:])] += 1

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self.thread_id:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu_started = time.thread_time()
            return
        took = time.perf_counter() - self._gc_started
        cpu = time.thread_time() - self._gc_cpu_started
        cpu_row = self.gc_cpu[info["generation"]]
        cpu_row[0] += cpu
        cpu_row[1] = max(cpu_row[1], cpu)
        row = self.gc[info["generation"]]
        row[0] += 1
        row[1] += took
        row[2] = max(row[2], took)
        if took >= 0.01:
            self.gc_long.append((round(time.time(), 2), info["generation"], round(took * 1000, 1)))

    def _sample(self) -> None:
        while True:
            time.sleep(0.005)
            started = self.step_started
            if not started or time.perf_counter() - started < SAMPLE_AFTER:
                continue
            frame = sys._current_frames().get(self.thread_id)
            if frame is None:
                continue
            frames = [f for f in traceback.extract_stack(frame)
                      if ("site-packages" not in f.filename or "/trio/" not in f.filename)
                      and not f.filename.startswith("<frozen")]
            inner = [f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in frames[-6:]]
            self.stacks[" < ".join(reversed(inner))] += 1

    def report(self) -> dict[str, Any]:
        lags = sorted(self.lags)

        def pct(p: float) -> float:
            return round(lags[min(len(lags) - 1, int(p * len(lags)))] * 1000, 1) if lags else float("nan")

        return {
            "loop_lag_ms": {"n": len(lags), "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
            "loop_lags_over_50ms": self.long_lags[:300],
            "sampler_overslept_over_50ms": self.descheduled[:300],
            "seconds": round(time.monotonic() - self.started, 1),
            "steps": dict(self.buckets),
            "steps_by_cpu_time": dict(self.cpu_buckets),
            "longest_steps_cpu_ms": sorted(self.longest_cpu, reverse=True)[:40],
            "gc_cpu_ms": {str(g): {"total": round(r[0] * 1000, 1), "max": round(r[1] * 1000, 1)}
                          for g, r in self.gc_cpu.items()},
            "longest_steps_ms": sorted(self.longest, reverse=True)[:40],
            "gc": {str(g): {"count": int(r[0]), "total_ms": round(r[1] * 1000, 1), "max_ms": round(r[2] * 1000, 1)}
                   for g, r in self.gc.items()},
            "gc_pauses_over_10ms": self.gc_long[:200],
            "stacks_during_long_steps": self.stacks.most_common(40),
            "watched_tasks_waiting_in": self.watched.most_common(30),
        }


def _peer_of(owner: Any) -> str:
    """``host:port`` of the client behind a Connection, a WebSocketConnection or a stream ("" if unknown)."""
    remote = getattr(owner, "remote", None)
    if isinstance(remote, str):
        return remote
    stream = getattr(owner, "_stream", owner)
    stream = getattr(stream, "inner", stream)
    sock = getattr(stream, "socket", None)
    try:
        return "{}:{}".format(*sock.getpeername()[:2]) if sock is not None else ""
    except (OSError, TypeError):
        return ""


def _use_source(path: str) -> None:
    """Import ``voicebot`` from ``path`` (another checkout, e.g. the code before a change) instead of the editable
    install: measure before and after with the same venv and probe."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__name__", repr(f))]
    sys.path.insert(0, path)


def main() -> int:
    if os.environ.get("VOICEBOT_SOURCE"):
        _use_source(os.environ["VOICEBOT_SOURCE"])
    probe: list[Probe] = []
    real_run = trio.run

    def run(*args: Any, **kwargs: Any) -> Any:
        if not probe:
            probe.append(Probe())
            kwargs["instruments"] = [*kwargs.get("instruments", ()), probe[0]]
        return real_run(*args, **kwargs)

    trio.run = run  # type: ignore[assignment]

    def dump() -> None:
        if probe:
            path = os.environ.get("VOICEBOT_STALL_REPORT", "stalls.json")
            with open(path, "w") as out:
                json.dump(probe[0].report(), out, indent=1)

    atexit.register(dump)
    from voicebot.cli import main as cli_main  # noqa: PLC0415 - after trio.run is patched

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
