#!/usr/bin/env python3
"""Media benchmark: N simultaneous echo sessions with real aiortc client peers through the hub.

Processes: a hub (server + bot extension, no local worker), ``voicebot worker`` (the measured side: one
process, or ``--processes K``) and this process, which plays N humans (each in its own lobby with one echo bot)
over real UDP on loopback. For each N it measures, over ``--window`` seconds after ``--warmup``:

- frames/s per echo track received by the humans (real time = 50; "real time" means every track >= 49),
- the share of received frames that carry the echoed tone (the echo really works, not just silence),
- worker CPU (% of one core, from /proc) and RSS per bot peer connection,
- setup: ``bot.add`` → ``bot.added`` and offer → connected, p50 / max.

By default the worker is pinned to CPU 0 and everything else to the other CPUs, so "largest real-time N"
is bot peer connections per core. Usage: ``python scripts/bench_media.py --n 4 8 12 16``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import numpy as np
import trio

from voicebot.bots import HumanPeer
from voicebot.client import connect
from voicebot.media import MediaConfig, frame_to_mono, open_media_loop
from voicebot.server import Server, Settings
from voicebot.workers import BotHubSettings, install_bot_hub

TOKEN = "bench-token"
LOOPBACK = MediaConfig(allow_loopback=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    return [int(x) for x in out.split()]


async def _run_hub(port: int) -> None:
    server = Server(Settings(port=port, db=":memory:", log_level="warning"), rng=random.Random(1))
    install_bot_hub(server, BotHubSettings(worker_token=TOKEN, start_timeout=30.0))
    await server.run()


class Session:
    """One human with an echo bot in its own lobby."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.tone = 300.0 + 10 * index
        self.human: HumanPeer | None = None
        self.bot: str | None = None
        self.add_time = 0.0
        self.tone_frames = 0
        self.frames = 0

    async def run(self, url: str, ready: trio.MemorySendChannel[Session], task_status: Any) -> None:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(connect(url))
            await client.hello(f"human{self.index}")
            lobby = await client.create_lobby(f"bench{self.index}")
            await client.join(lobby["id"])
            self.human = HumanPeer(client, LOOPBACK, tone=self.tone)
            nursery = await stack.enter_async_context(trio.open_nursery())
            nursery.start_soon(self.human.run)
            start = time.monotonic()
            added = await client.request("bot.add", bot="echo", timeout=60)
            self.add_time = time.monotonic() - start
            self.bot = added["peer_id"]
            track = await self.human.track_from(self.bot, timeout=60)
            task_status.started()
            async for frame in track.frames:
                self.frames += 1
                if self.frames % 10 == 0:  # check the echo every 10th frame (cheap)
                    mono = frame_to_mono(frame)
                    if float(np.sqrt(np.mean(mono**2))) > 0.05:
                        self.tone_frames += 10


    async def remove(self) -> None:
        """Remove this session's bot (frees the worker's capacity for the next round)."""
        if self.human is not None and self.bot is not None:
            with trio.move_on_after(5):
                await self.human.client.request("bot.remove", peer_id=self.bot)


async def _measure(url: str, n: int, worker_pids: list[int], warmup: float, window: float) -> dict[str, Any]:
    sessions = [Session(i) for i in range(n)]
    async with trio.open_nursery() as nursery:
        send, _recv = trio.open_memory_channel[Session](n)
        t0 = time.monotonic()
        async with trio.open_nursery() as starters:
            for s in sessions:
                starters.start_soon(nursery.start, s.run, url, send)
        connect_all = time.monotonic() - t0
        rss0 = sum(_rss_mib(p) for p in worker_pids)
        await trio.sleep(warmup)
        f0 = [s.frames for s in sessions]
        tf0 = [s.tone_frames for s in sessions]
        c0 = sum(_cpu_seconds(p) for p in worker_pids)
        w0 = time.monotonic()
        await trio.sleep(window)
        elapsed = time.monotonic() - w0
        cpu = (sum(_cpu_seconds(p) for p in worker_pids) - c0) / elapsed * 100
        fps = [(s.frames - f) / elapsed for s, f in zip(sessions, f0, strict=True)]
        tone_share = sum(s.tone_frames - t for s, t in zip(sessions, tf0, strict=True)) / max(
            1, sum(s.frames - f for s, f in zip(sessions, f0, strict=True)))
        rss = sum(_rss_mib(p) for p in worker_pids)
        setups = [t for s in sessions if s.human for t in s.human.setup_times]
        adds = [s.add_time for s in sessions]
        async with trio.open_nursery() as removers:
            for s in sessions:
                removers.start_soon(s.remove)
        nursery.cancel_scope.cancel()
    return {
        "n": n, "fps_min": round(min(fps), 1), "fps_mean": round(statistics.mean(fps), 1),
        "real_time": min(fps) >= 49.0, "echo_tone_share": round(tone_share, 2),
        "worker_cpu_pct": round(cpu, 1), "worker_rss_mib": round(rss, 1), "rss_at_start_mib": round(rss0, 1),
        "add_p50_s": round(statistics.median(adds), 3), "add_max_s": round(max(adds), 3),
        "setup_p50_s": round(statistics.median(setups), 3) if setups else None,
        "setup_max_s": round(max(setups), 3) if setups else None, "connect_all_s": round(connect_all, 2),
    }


async def _wait_for_echo(url: str) -> None:
    with trio.fail_after(30):
        while True:
            try:
                async with connect(url) as client:
                    await client.hello("bench")
                    bots = (await client.request("bot.list"))["bots"]
                    if any(b["name"] == "echo" and b["available"] for b in bots):
                        return
            except OSError:
                pass  # the hub is not listening yet
            await trio.sleep(0.2)


async def _bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    cpus = sorted(os.sched_getaffinity(0))
    pin = args.pin and len(cpus) > 1 and args.processes == 1
    others = cpus[1:] if pin else cpus
    env = {**os.environ, "VOICEBOT_WORKER_TOKEN": TOKEN}
    results: list[dict[str, Any]] = []
    hub = await trio.lowlevel.open_process([sys.executable, __file__, "--role", "hub", "--port", str(port)], env=env)
    worker_cmd = [sys.executable, "-m", "voicebot.cli", "worker", "--server", url, "--allow-loopback",
                  "--capacity", str(max(args.n) if args.processes == 1 else -(-max(args.n) // args.processes)),
                  "--processes", str(args.processes), "--log-level", "warning"]
    if pin:
        os.sched_setaffinity(0, others)
        os.sched_setaffinity(hub.pid, others)
    worker = None
    try:
        await trio.sleep(1.0)
        worker = await trio.lowlevel.open_process(worker_cmd, env=env)
        if pin:
            os.sched_setaffinity(worker.pid, [cpus[0]])
        await _wait_for_echo(url)
        if args.processes > 1:
            await trio.sleep(3.0)  # the other worker processes register about as fast as the first
        pids = _children(worker.pid) if args.processes > 1 else [worker.pid]
        idle_rss = sum(_rss_mib(p) for p in pids)
        async with open_media_loop():
            for n in args.n:
                with trio.fail_after(args.warmup + args.window + 120):
                    result = await _measure(url, n, pids, args.warmup, args.window)
                result["worker_idle_rss_mib"] = round(idle_rss, 1)
                result["rss_per_pc_mib"] = round((result["worker_rss_mib"] - idle_rss) / n, 2)
                result["pinned_worker_to_one_cpu"] = pin
                result["worker_processes"] = args.processes
                results.append(result)
                print(json.dumps(result), flush=True)
                await trio.sleep(3.0)  # let the bots leave and the worker settle
    finally:
        with trio.CancelScope(shield=True):
            for proc in (worker, hub):
                if proc is not None:
                    proc.terminate()
                    with trio.move_on_after(10) as waited:
                        await proc.wait()
                    if waited.cancelled_caught:
                        proc.kill()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("bench", "hub"), default="bench")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n", type=int, nargs="+", default=[4, 8, 12, 16])
    parser.add_argument("--processes", type=int, default=1, help="worker processes (voicebot worker --processes)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the worker to CPU 0")
    args = parser.parse_args()
    if args.role == "hub":
        trio.run(_run_hub, args.port)
        return
    results = trio.run(_bench, args)
    ok = [r["n"] for r in results if r["real_time"]]
    print(f"largest real-time N: {max(ok) if ok else 'none'} (of {args.n}); "
          f"{'per core (worker pinned to one CPU)' if results and results[0]['pinned_worker_to_one_cpu'] else ''}")


if __name__ == "__main__":
    main()
