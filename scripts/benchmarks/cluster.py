"""Parts of the cluster benchmark (``scripts/bench_cluster.py`` is the entry point): the load spread over hubs,
the hub processes, readiness, and the printed table."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from voicebot.testing import readyz_reasons

from .common import LISTEN_RE, SCRIPT
from .load import BenchClient, LoadRun, describe
from .report import column_table, problems
from .servers import stop_process


@dataclass(frozen=True)
class Config:
    """One measured set-up: how many hubs, whether they run in cluster mode, and how pairs are placed."""

    name: str
    hubs: int
    cluster: bool
    pairs: str
    """``same``: a lobby's members are all on one hub (lobbies spread over hubs); ``cross``: a lobby's members
    alternate between hubs and every message goes to a peer on another hub."""


CONFIGS: dict[str, Config] = {
    "single": Config("1 hub, no cluster", 1, False, "same"),
    "1hub": Config("1 hub, cluster", 1, True, "same"),
    "2hub-same": Config("2 hubs, same-hub pairs", 2, True, "same"),
    "2hub-cross": Config("2 hubs, cross-hub pairs", 2, True, "cross"),
}
"""The set-ups ``--configs`` chooses from (all by default)."""


class ClusterLoad(LoadRun):
    """The relay load generator with its clients spread over several hubs (``urls``) by ``pairs``."""

    def __init__(self, urls: Sequence[str], pairs: str, args: argparse.Namespace) -> None:
        super().__init__(urls[0], "hub", args)
        self.urls = list(urls)
        self.pairs = pairs
        self.hub_of: dict[int, int] = {}

    def url_for(self, c: BenchClient) -> str:
        """The hub ``c`` is placed on."""
        return self.urls[self.hub_of[c.idx]]

    def assign_lobbies(self) -> list[list[BenchClient]]:
        """Lobby ``i % lobbies`` for client ``i``; the hub and the peers follow ``pairs``."""
        lobbies = super().assign_lobbies()
        n = len(self.urls)
        for members in lobbies:
            for position, c in enumerate(members):
                self.hub_of[c.idx] = c.lobby % n if self.pairs == "same" or n == 1 else position % n
            if self.pairs == "cross" and n > 1:
                for c in members:
                    c.peers = [p.idx for p in members if self.hub_of[p.idx] != self.hub_of[c.idx]]
        return lobbies

    def placement(self) -> dict[str, Any]:
        """How many clients each hub holds and how many of the sends cross hubs (for the report)."""
        per_hub = [sum(1 for h in self.hub_of.values() if h == i) for i in range(len(self.urls))]
        crossing = sum(self.hub_of[p] != self.hub_of[c.idx] for c in self.clients for p in c.peers)
        total = sum(len(c.peers) for c in self.clients)
        return {"clients_per_hub": per_hub, "cross_hub_peer_share": round(crossing / total, 3) if total else 0.0}


def hub_command(config: Config, db: str, redis_url: str, args: argparse.Namespace) -> list[str]:
    """``voicebot serve`` through bench_relay's ``--hub-server`` mode (raised file limit, same GC options)."""
    command = [sys.executable, str(SCRIPT), "--hub-server", "--host", "127.0.0.1", "--port", "0", "--db", db,
               "--log-level", "warning", "--local-worker", "0", "--outbox-size", str(args.outbox_size),
               "--hello-timeout", "60",
               # every benchmark client comes from 127.0.0.1: lift the per-address quotas for this measurement
               "--max-connections-per-address", "0", "--connection-rate-per-address", "0",
               "--request-rate-per-address", "0", "--max-lobbies-per-address", "0",
               # and the per-connection request budget (50/s): at saturation a client sends more than that
               "--request-rate", "100000", "--request-burst", "100000"]
    if config.cluster:
        command += ["--cluster", redis_url]
    return command


def _profiled(command: list[str], args: argparse.Namespace, name: str) -> list[str]:
    """With ``--profile DIR``: the hub runs under cProfile, which writes DIR/NAME.prof when it exits."""
    if not args.profile:
        return command
    os.makedirs(args.profile, exist_ok=True)
    return [command[0], "-m", "cProfile", "-o", os.path.join(args.profile, f"{name}.prof"), *command[1:]]


async def start_hub(command: list[str], nursery: trio.Nursery, stack: AsyncExitStack) -> tuple[trio.Process, str]:
    """Start one hub process (stopped with SIGTERM, then SIGKILL, when ``stack`` closes) and read its URL."""
    stderr_file = stack.enter_context(tempfile.TemporaryFile("w+"))  # noqa: SIM115 - closed by the stack
    proc: trio.Process = await nursery.start(partial(
        trio.run_process, command, stdout=subprocess.PIPE, stderr=stderr_file, check=False))
    stack.push_async_callback(stop_process, proc)
    assert proc.stdout is not None
    buffer = b""
    with trio.fail_after(30):
        while True:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                stderr_file.seek(0)
                raise RuntimeError(f"hub exited before listening (code {await proc.wait()}): "
                                   f"{stderr_file.read()[-1500:]}")
            buffer += chunk
            match = LISTEN_RE.search(buffer.decode(errors="replace"))
            if match:
                return proc, match.group(1)


async def wait_ready(urls: Sequence[str], timeout: float = 30.0) -> None:
    """Until every hub's ``/readyz`` is ready (in cluster mode: Redis reached, subscription up); the hubs run
    without a bot worker (``--local-worker 0``), so ``no_bot_worker`` does not count."""
    with trio.fail_after(timeout):
        for url in urls:
            while set(await trio.to_thread.run_sync(readyz_reasons, url)) - {"no_bot_worker"}:  # noqa: ASYNC110 - polling
                await trio.sleep(0.2)


async def run_config(config: Config, db: str, redis_url: str, args: argparse.Namespace,
                     redis_pid: int | None = None) -> dict[str, Any]:
    """Start ``config``'s hubs, run the load, stop them; always returns a result (``failed`` on error)."""
    result: dict[str, Any] = {"target": config.name, "config": config.__dict__, "loadavg_before": os.getloadavg()}
    command = hub_command(config, db, redis_url, args)
    result["command"] = command
    try:
        async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
            hubs = [await start_hub(_profiled(command, args, f"{config.hubs}hub-{config.pairs}-{i}"), nursery, stack)
                    for i in range(config.hubs)]
            urls = [url for _, url in hubs]
            await wait_ready(urls)
            load = ClusterLoad(urls, config.pairs, args)
            if redis_pid is not None and config.cluster:
                load.side_pids["redis"] = redis_pid
            print(f"bench: {config.name}: {', '.join(urls)}; {args.clients} clients", file=sys.stderr, flush=True)
            with trio.fail_after(args.setup_timeout + args.warmup + args.duration + args.drain + 40):
                result |= await load.run([proc.pid for proc, _ in hubs])
            result |= load.placement()
            result["hub_exit_codes"] = []
            await stack.aclose()
            result["hub_exit_codes"] = [proc.returncode for proc, _ in hubs]
    except Exception as exc:
        result["failed"] = describe(exc)
    result["loadavg_after"] = os.getloadavg()
    return result


def _with_redis(r: dict[str, Any]) -> str:
    """CPU per delivered message of the hubs and redis-server together (when redis-server was measured)."""
    redis = r.get("side_cpu_pct", {}).get("redis")
    hubs, per_msg = r.get("server_cpu_pct"), r.get("server_cpu_us_per_msg")
    if redis is None or not hubs or per_msg is None:
        return "-"
    return f"{per_msg * (hubs + redis) / hubs:.1f}"


def render(report: dict[str, Any]) -> str:
    """The results as a table, one column per set-up."""
    p, m, results = report["parameters"], report["machine"], report["results"]
    rate = p["rate"] or f"max (window {p['window']})"
    lines = [f"voicebot cluster benchmark: {p['clients']} clients, {p['lobbies']} lobbies, rate {rate} msg/s/client, "
             f"{p['duration']} s (+{p['warmup']} s warm-up), ~{p['size']} B frames; one redis-server, one "
             f"PostgreSQL",
             f"machine: {m['cpus_usable']} cpus ({m['cpu_model']}), python {m['python']}; load average before: "
             f"{' '.join(f'{x:.2f}' for x in m['loadavg_before'])}"]

    def lat(r: dict[str, Any], q: str) -> str:
        v = r.get("latency_ms", {}).get(q)
        return "-" if v is None else f"{v:.2f}"

    def rss(r: dict[str, Any]) -> str:
        per = r.get("server_rss_mb_per_process")
        return " + ".join(f"{v:.0f}" for v in per) if per else "-"

    def load(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        return f"{v[0]:.2f}" if v else "-"

    rows: list[tuple[str, Any]] = [
        ("clients per hub", lambda r: "/".join(str(n) for n in r.get("clients_per_hub", [])) or "-"),
        ("cross-hub share", lambda r: r.get("cross_hub_peer_share", "-")),
        ("offered msg/s", lambda r: r.get("offered_msg_s", "-")),
        ("delivered msg/s", lambda r: r.get("throughput_msg_s", "-")),
        ("undelivered", lambda r: r.get("lost_window", "-")),
        ("latency p50 ms", lambda r: lat(r, "p50")),
        ("latency p95 ms", lambda r: lat(r, "p95")),
        ("latency p99 ms", lambda r: lat(r, "p99")),
        ("latency max ms", lambda r: lat(r, "max")),
        ("hubs CPU %", lambda r: r.get("server_cpu_pct", "-")),
        ("hubs CPU us/msg", lambda r: r.get("server_cpu_us_per_msg", "-")),
        ("RSS per hub MiB", rss),
        ("redis CPU %", lambda r: r.get("side_cpu_pct", {}).get("redis", "-")),
        ("hubs+redis us/msg", _with_redis),
        ("client CPU %", lambda r: r.get("client_cpu_pct", "-")),
        ("others CPU %", lambda r: r.get("other_processes_cpu_pct", "-")),
        ("load avg 1m before", lambda r: load(r, "loadavg_before")),
        ("load avg 1m after", lambda r: load(r, "loadavg_after")),
        ("errors", lambda r: sum(r.get("errors", {}).values()) + r.get("misrouted", 0)),
    ]
    lines += column_table(rows, results, min_width=16)
    for r in results:
        lines += problems(r)
    return "\n".join(lines)
