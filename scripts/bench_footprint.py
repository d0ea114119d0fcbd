#!/usr/bin/env python
"""Footprint benchmark: what an idle ``voicebot serve`` costs in memory, and what idle connections cost.

Measures, each against a fresh ``voicebot serve`` process on loopback (``--db :memory:``):

1. idle RSS with ``--local-worker 0`` (goal <= 45 MiB);
2. idle RSS with the local bot worker (default capacity) before any bot starts (goal <= 60 MiB for the hub's
   process); with ``--local-worker-mode process`` (the default) the worker is a child process, measured apart
   (``worker_child_rss_mib``) and added up (``worker_total_rss_mib``);
3. N idle connections (default 10,000), each past ``hello``: RSS per connection (goal <= 24 KiB) and the
   server's CPU over a window of heartbeats (``--heartbeat-interval``, default the server's 15 s), as a share of
   one core (goal < 5 %).

RSS is read from ``/proc/<pid>/status`` (VmRSS) as the minimum of several samples once the process is quiet;
CPU from ``/proc/<pid>/stat`` (utime + stime). The script raises its own and the server's open-file limit to
the hard limit and refuses to open more connections than that allows. Prints a table, then one JSON line.

    python scripts/bench_footprint.py                   # all three, 10,000 connections
    python scripts/bench_footprint.py --connections 2000 --window 20 --heartbeat-interval 5
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio
import trio_websocket

from voicebot.testing import child_pids

LISTEN_RE = re.compile(r"ws://(\S+?):(\d+)/ws")
QUOTA_FLAGS = ("--max-connections-per-address", "0", "--connection-rate-per-address", "0",
               "--request-rate-per-address", "0")
"""Every benchmark connection comes from 127.0.0.1: the per-address quotas are lifted."""
GOALS = {"idle_rss_mib": 45.0, "worker_rss_mib": 60.0, "kib_per_connection": 24.0, "heartbeat_cpu_pct": 5.0}


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard one (inherited by the server); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiet_rss_kib(pid: int, samples: int = 6, every: float = 0.5) -> int:
    """Minimum VmRSS over a few samples (a transient allocation is not the footprint)."""
    values = []
    for _ in range(samples):
        values.append(rss_kib(pid))
        time.sleep(every)
    return min(values)


class Serve:
    """``voicebot serve`` on 127.0.0.1, port 0, killed on exit."""

    def __init__(self, *flags: str) -> None:
        command = [sys.executable, "-m", "voicebot.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                   "--db", ":memory:", "--log-level", "warning", *flags]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = LISTEN_RE.search(line)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"serve did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = f"ws://127.0.0.1:{match.group(2)}/ws"

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait(10)


def idle_rss(flags: Sequence[str], settle: float) -> float:
    return idle_rss_with_children(flags, settle)[0]


def idle_rss_with_children(flags: Sequence[str], settle: float) -> tuple[float, float]:
    """Quiet RSS (MiB) of an idle serve's process and of its child processes together."""
    with Serve(*flags) as server:
        time.sleep(settle)
        children = child_pids(server.proc.pid)
        return quiet_rss_kib(server.proc.pid) / 1024, sum(quiet_rss_kib(c, samples=2) for c in children) / 1024


async def hold_connections(url: str, count: int, concurrency: int, *, ready: trio.Event,
                           done: trio.Event, failures: list[str]) -> None:
    """Open ``count`` connections, say hello on each, hold them (answering pings) until ``done``."""
    limiter = trio.CapacityLimiter(concurrency)
    opened = 0

    async def one(i: int, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal opened
        try:
            async with limiter:
                ws = await trio_websocket.connect_websocket_url(nursery, url, message_queue_size=4)
                await ws.send_message(json.dumps({"type": "hello", "name": f"idle{i}"}))
                welcome = json.loads(await ws.get_message())
                if welcome.get("type") != "welcome":
                    raise RuntimeError(f"no welcome: {welcome}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            opened += 1
            if opened == count:
                ready.set()
        await done.wait()  # then the whole client is cancelled (closing 10,000 sockets politely is not measured)

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)


def idle_connections(args: argparse.Namespace) -> dict[str, Any]:
    flags = ["--local-worker", "0", "--hello-timeout", "60", *QUOTA_FLAGS]
    if args.heartbeat_interval:
        flags += ["--heartbeat-interval", str(args.heartbeat_interval)]
    flags += args.serve_args.split()
    with Serve(*flags) as server:
        time.sleep(args.settle)
        before = quiet_rss_kib(server.proc.pid)
        failures: list[str] = []
        result: dict[str, Any] = {}

        async def run() -> None:
            ready, done = trio.Event(), trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(
                    hold_connections, server.url, args.connections, args.concurrency, ready=ready, done=done,
                                                     failures=failures))
                with trio.fail_after(args.connect_timeout):
                    await ready.wait()
                await trio.sleep(args.settle)
                result["rss_kib"] = await trio.to_thread.run_sync(quiet_rss_kib, server.proc.pid)
                cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
                await trio.sleep(args.window)
                result["cpu_s"], result["wall_s"] = cpu_seconds(server.proc.pid) - cpu0, time.monotonic() - t0
                done.set()
                nursery.cancel_scope.cancel()

        trio.run(run)
    held = args.connections - len(failures)
    return {
        "connections": held, "failures": len(failures), "first_failure": failures[0] if failures else None,
        "idle_rss_kib": before, "loaded_rss_kib": result["rss_kib"],
        "kib_per_connection": (result["rss_kib"] - before) / max(held, 1),
        "heartbeat_cpu_pct": 100.0 * result["cpu_s"] / result["wall_s"], "window_s": result["wall_s"],
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=200, help="simultaneous connection setups (200)")
    parser.add_argument("--window", type=float, default=31.0, help="seconds of idle CPU measured (default 31)")
    parser.add_argument("--heartbeat-interval", type=float, default=0.0,
                        help="serve --heartbeat-interval (default: the server's own)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before sampling RSS (2)")
    parser.add_argument("--connect-timeout", type=float, default=300.0, help="bound on opening them all (300 s)")
    parser.add_argument("--serve-args", default="", help="extra flags for the connections' server")
    parser.add_argument("--worker-args", default="",
                        help="extra flags for the local-worker measurement, e.g. '--local-worker-mode thread'")
    parser.add_argument("--skip", default="", help="comma-separated: idle, worker, connections")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    limit = raise_nofile()
    if args.connections + 64 > limit:
        parser.error(f"--connections {args.connections} needs more open files than the limit {limit}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out: dict[str, Any] = {"goals": GOALS}
    if "idle" not in skip:
        out["idle_rss_mib"] = idle_rss(["--local-worker", "0"], args.settle)
    if "worker" not in skip:
        out["worker_rss_mib"], out["worker_child_rss_mib"] = idle_rss_with_children(args.worker_args.split(),
                                                                                    args.settle)
        out["worker_total_rss_mib"] = out["worker_rss_mib"] + out["worker_child_rss_mib"]
    if "connections" not in skip:
        out["connections"] = idle_connections(args)
    rows = []
    if "idle_rss_mib" in out:
        rows.append(("serve --local-worker 0, idle RSS", f"{out['idle_rss_mib']:.1f} MiB", "<= 45 MiB"))
    if "worker_rss_mib" in out:
        rows.append(("serve (local worker), hub process idle RSS", f"{out['worker_rss_mib']:.1f} MiB", "<= 60 MiB"))
        rows.append(("  its worker process (0: a thread), idle RSS", f"{out['worker_child_rss_mib']:.1f} MiB", ""))
        rows.append(("  both together", f"{out['worker_total_rss_mib']:.1f} MiB", ""))
    if "connections" in out:
        c = out["connections"]
        rows.append((f"{c['connections']} idle connections, RSS each", f"{c['kib_per_connection']:.1f} KiB",
                     "<= 24 KiB"))
        rows.append((f"their heartbeats, server CPU ({c['window_s']:.0f} s)", f"{c['heartbeat_cpu_pct']:.2f} %",
                     "< 5 % of a core"))
        if c["failures"]:
            rows.append(("connections that failed", str(c["failures"]), c["first_failure"] or ""))
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'measure':<{width}}  {'value':>12}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>12}  {goal}")
    line = json.dumps(out)
    print(line)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
