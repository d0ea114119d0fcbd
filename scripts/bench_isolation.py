#!/usr/bin/env python3
"""Isolation under attack: can one address hurt everyone else?

Three processes: ``voicebot serve`` (a temporary SQLite file, its local bot worker — a child process, or a thread
with ``VOICEBOT_LOCAL_WORKER_MODE=thread`` — default limits and quotas), an **attacker** process flooding from
127.0.0.1, and this process, whose **canary** — two clients bound to source address 127.0.0.2, in one lobby — keeps
chatting at ``--rate`` messages/s. The canary measures the
delivery latency of every chat line (sender → the other client; same process clock) and counts lines lost.

The attacker runs four floods at once (each as fast as the server lets it):

- ``connections``: opens connections without saying hello, keeps up to ``--attack-conns`` open, churns them;
- ``big_replies``: connections that create lobbies (up to the quotas) and send ``lobby.list`` without ever
  reading the replies (the outbox fills; the server closes them 1008) — reconnecting every time;
- ``hashing``: fresh connections that register names (one Argon2id hash each), wrong-password hellos for a
  registered name, and wrong lobby-password joins;
- ``bot_adds``: members that add ``speaker`` bots with 1,000 characters of text and remove them, in a loop.

Phases: ``quiet`` (no attack) then ``attack``. Prints a table and, with ``--json``, writes the figures.
Goal: canary p99 < 50 ms under attack and nothing lost.

Usage: ``python scripts/bench_isolation.py [--seconds 20] [--quiet-seconds 5] [--rate 50] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from voicebot.client import Client, RemoteError, connect, connect_stream
from voicebot.testing import child_pids

ADMIN = "bench-isolation-admin"
CANARY_ADDRESS = "127.0.0.2"
SPEECH = ("the quick brown fox jumps over the lazy dog " * 30)[:1000]


# -- the server ---------------------------------------------------------------------------------------------
WORKER_TOKEN = "bench-isolation-worker"


def start_server(log_path: Path, db_path: Path, external_worker: bool,
                 stall_report: str | None = None) -> tuple[subprocess.Popen[str], str]:
    """``voicebot serve`` on 127.0.0.1:<free port>, stderr to ``log_path``; returns the process and its URL.
    With ``external_worker`` the hub runs no in-process worker (bots run in a ``voicebot worker`` process); with
    ``stall_report`` it runs under ``scripts/benchmarks/stallprobe.py``, which writes that JSON file at exit."""
    log = log_path.open("w")
    extra = ["--local-worker", "0", "--worker-token", WORKER_TOKEN] if external_worker else []
    env = {**os.environ, "VOICEBOT_ADMIN_TOKEN": ADMIN}
    entry = ["-m", "voicebot.cli"]
    if stall_report:
        entry = [str(Path(__file__).parent / "benchmarks" / "stallprobe.py")]
        env["VOICEBOT_STALL_REPORT"] = stall_report
    proc = subprocess.Popen(
        [sys.executable, *entry, "serve", "--port", "0", "--host", "127.0.0.1", "--db", str(db_path),
         "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"ws://\S+/ws", line)
        if match:
            return proc, match.group(0)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"voicebot serve did not start; see {log_path}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# -- the canary ---------------------------------------------------------------------------------------------
@asynccontextmanager
async def connect_from(url: str, source: str) -> AsyncIterator[Client]:
    """A client whose TCP connection is bound to the local address ``source``."""
    match = re.match(r"ws://([^:/]+):(\d+)(/\S*)", url)
    assert match, url
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    await sock.bind((source, 0))
    await sock.connect((host, port))
    sock.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
    async with connect_stream(trio.SocketStream(sock), path=path) as client:
        yield client


class Canary:
    """Two clients in one lobby; ``a`` chats, ``b`` records each line's delivery latency."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.latency: dict[int, float] = {}
        self.errors: Counter[str] = Counter()
        self.own_lag: list[float] = []
        self.wall_start: dict[str, float] = {}
        self.events: Counter[str] = Counter()

    async def run(self, url: str, rate: float, phases: list[tuple[str, float]],
                  marks: dict[str, tuple[int, int]], phase_started: dict[str, trio.Event]) -> None:
        async with connect_from(url, CANARY_ADDRESS) as a, connect_from(url, CANARY_ADDRESS) as b:
            await a.hello("canary a")
            await b.hello("canary b")
            lobby = await a.create_lobby("canary", private=True)
            await a.join(lobby["id"])
            await b.join(lobby["id"])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, b)
                nursery.start_soon(self._drain, a)
                nursery.start_soon(self._own_lag)
                seq = 0
                for name, seconds in phases:
                    phase_started[name].set()
                    self.wall_start[name] = time.time()
                    first = seq
                    end = trio.current_time() + seconds
                    next_at = trio.current_time()
                    while trio.current_time() < end:
                        self.sent[seq] = trio.current_time()
                        try:
                            await a.chat(f"{seq}")
                        except Exception as exc:  # the canary's own connection failing is a finding, not a crash
                            self.errors[type(exc).__name__] += 1
                            if a.closed is not None:
                                self.errors[f"closed {a.closed.code} {a.closed.reason}"] += 1
                        seq += 1
                        next_at += 1.0 / rate
                        await trio.sleep_until(next_at)
                    marks[name] = (first, seq)
                await trio.sleep(2.0)  # late deliveries
                nursery.cancel_scope.cancel()

    async def _own_lag(self) -> None:
        """This process's own scheduling lag (a 10 ms sleep's overshoot): when it is large, the machine, not the
        server, delays the canary."""
        while True:
            before = trio.current_time()
            await trio.sleep(0.01)
            self.own_lag.append(trio.current_time() - before - 0.01)

    async def _receive(self, client: Client) -> None:
        async for event in client.events:
            self.events[f"b {event.get('type')}"] += 1
            if event.get("type") == "chat":
                seq = int(event["text"])
                if seq in self.sent and seq not in self.latency:
                    self.latency[seq] = trio.current_time() - self.sent[seq]

    async def _drain(self, client: Client) -> None:
        async for event in client.events:
            self.events[f"a {event.get('type')}"] += 1
            if event.get("type") == "error":  # e.g. rate_limited: the line was refused, a finding
                self.errors[f"error {event.get('code')}"] += 1

    def summary(self, first: int, last: int) -> dict[str, Any]:
        got = sorted(self.latency[s] * 1000 for s in range(first, last) if s in self.latency)
        sent = last - first

        def pct(p: float) -> float:
            return round(got[min(len(got) - 1, int(p * len(got)))], 2) if got else float("nan")

        start = self.sent.get(first, 0.0)
        slow = [(round(self.sent[s] - start, 2), round(self.latency[s] * 1000, 1)) for s in range(first, last)
                if s in self.latency and self.latency[s] > 0.05]
        return {"sent": sent, "received": len(got), "lost": sent - len(got), "p50_ms": pct(0.50),
                "p99_ms": pct(0.99), "max_ms": round(got[-1], 2) if got else float("nan"),
                "over_50ms_at": slow[:100]}


# -- the attacker (a separate process) ----------------------------------------------------------------------
class Attack:
    """The floods; ``stats`` counts outcomes by flood and code."""

    def __init__(self, url: str, conns: int, floods: str = "connections,big_replies,hashing,bot_adds") -> None:
        self.url = url
        self.conns = conns
        self.floods = set(floods.split(","))
        self.stats: Counter[str] = Counter()

    def note(self, flood: str, exc: BaseException) -> None:
        if isinstance(exc, RemoteError):
            self.stats[f"{flood}.{exc.code}"] += 1
        elif isinstance(exc, trio_websocket.ConnectionRejected):
            self.stats[f"{flood}.http_{exc.status_code}"] += 1
        else:
            self.stats[f"{flood}.{type(exc).__name__}"] += 1

    async def run(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                if "connections" in self.floods:
                    nursery.start_soon(self.connections)
                for i in range(8 if "big_replies" in self.floods else 0):
                    nursery.start_soon(self.big_replies, i)
                for i in range(6 if "hashing" in self.floods else 0):
                    nursery.start_soon(self.hashing, i)
                for i in range(3 if "bot_adds" in self.floods else 0):
                    nursery.start_soon(self.bot_adds, i)

    async def _forever(self, flood: str, body: Any, *args: Any) -> None:
        while True:
            try:
                await body(*args)
            except* (RemoteError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, OSError,
                     trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as group:
                for exc in group.exceptions:
                    self.note(flood, exc)
            await trio.sleep(0.01)

    async def connections(self) -> None:
        async def hold(scope: trio.CancelScope, done: trio.Event) -> None:
            with scope:
                try:
                    async with trio.open_nursery() as n:
                        with trio.fail_after(5):
                            await trio_websocket.connect_websocket_url(n, self.url)
                        self.stats["connections.opened"] += 1
                        done.set()
                        await trio.sleep_forever()
                except* Exception as group:
                    for exc in group.exceptions:
                        self.note("connections", exc)
                finally:
                    done.set()

        scopes: list[trio.CancelScope] = []
        async with trio.open_nursery() as nursery:
            while True:
                scope, done = trio.CancelScope(), trio.Event()
                nursery.start_soon(hold, scope, done)
                await done.wait()
                scopes.append(scope)
                if len(scopes) > self.conns:
                    scopes.pop(0).cancel()

    async def big_replies(self, i: int) -> None:
        async def once() -> None:
            async with trio.open_nursery() as n:
                ws = await trio_websocket.connect_websocket_url(n, self.url, message_queue_size=0)
                await ws.send_message(json.dumps({"type": "hello", "name": f"lister{i}x{secrets.token_hex(3)}"}))
                for j in range(12):
                    await ws.send_message(json.dumps({"type": "lobby.create", "name": f"big lobby {'x' * 50} {j}"}))
                while True:  # never read: the replies pile up in the server's outbox
                    with trio.fail_after(5):
                        await ws.send_message(json.dumps({"type": "lobby.list"}))
                    self.stats["big_replies.lobby_list_sent"] += 1

        await self._forever("big_replies", once)

    async def hashing(self, i: int) -> None:
        victim = f"victim{i}"
        try:
            async with connect(self.url) as owner:
                await owner.hello(victim)
                await owner.request("name.register", password="the real password")
                room = await owner.create_lobby("locked", password="door code")
        except* Exception as group:
            for exc in group.exceptions:
                self.note("hashing", exc)
            room = {"id": "l_missing"}

        async def once() -> None:
            async with connect(self.url) as c:
                try:
                    await c.hello(victim, password=secrets.token_hex(8))
                except RemoteError as exc:
                    self.note("hashing", exc)
                    await c.hello(f"h{i}x{secrets.token_hex(4)}")
                try:
                    await c.request("name.register", password=secrets.token_hex(8))
                    self.stats["hashing.registered"] += 1
                except RemoteError as exc:
                    self.note("hashing", exc)
                for _ in range(3):
                    try:
                        await c.join(room["id"], password=secrets.token_hex(6))
                    except RemoteError as exc:
                        self.note("hashing", exc)

        await self._forever("hashing", once)

    async def bot_adds(self, i: int) -> None:
        async def once() -> None:
            async with connect(self.url) as c:
                await c.hello(f"botter{i}x{secrets.token_hex(3)}")
                lobby = await c.create_lobby(f"bots {i}")
                await c.join(lobby["id"])
                for _ in range(50):
                    try:
                        added = await c.request("bot.add", bot="speaker", text=SPEECH, timeout=30)
                        self.stats["bot_adds.added"] += 1
                        await c.request("bot.remove", peer_id=added["peer_id"])
                    except RemoteError as exc:
                        self.note("bot_adds", exc)
                        await trio.sleep(0.2)

        await self._forever("bot_adds", once)


def attacker_main(url: str, seconds: float, conns: int, floods: str) -> None:
    # The attacker's own CPU would otherwise compete with the canary process on a small machine; we measure the
    # server's isolation, not the OS scheduler's, so the attacker runs at the lowest priority.
    os.nice(19)
    attack = Attack(url, conns, floods)
    trio.run(attack.run, seconds)
    print(json.dumps(dict(attack.stats)), flush=True)


# -- the run ------------------------------------------------------------------------------------------------
async def bench(url: str, args: argparse.Namespace, server_pid: int | None) -> dict[str, Any]:
    canary = Canary()
    phases = [("quiet", args.quiet_seconds), ("attack", args.seconds)]
    marks: dict[str, tuple[int, int]] = {}
    started = {name: trio.Event() for name, _ in phases}
    attack_stats: dict[str, int] = {}
    rss: dict[str, float] = {}
    cpu: dict[str, float] = {}

    async def attacker() -> None:
        await started["attack"].wait()
        if server_pid is not None:
            rss["before_attack"] = rss_mib(server_pid)
            children = child_pids(server_pid)
            rss["worker_before_attack"] = sum(rss_mib(c) for c in children)
            cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
            child_cpu0 = sum(cpu_seconds(c) for c in children)
        result = await trio.run_process(
            [sys.executable, __file__, "--attacker", url, "--seconds", str(args.seconds),
             "--attack-conns", str(args.attack_conns), "--floods", args.floods], capture_stdout=True, check=False)
        lines = result.stdout.decode().strip().splitlines()
        attack_stats.update(json.loads(lines[-1]) if lines else {})
        if server_pid is not None:
            rss["after_attack"] = rss_mib(server_pid)
            rss["worker_after_attack"] = sum(rss_mib(c) for c in children)  # a restarted child is not counted
            wall = time.monotonic() - t0
            cpu["attack_pct_of_one_core"] = round(100 * (cpu_seconds(server_pid) - cpu0) / wall, 1)
            cpu["worker_attack_pct_of_one_core"] = round(
                100 * (sum(cpu_seconds(c) for c in children) - child_cpu0) / wall, 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attacker)
        await canary.run(url, args.rate, phases, marks, started)
    return {
        "canary": {name: canary.summary(*marks[name]) for name, _ in phases},
        "canary_errors": dict(canary.errors),
        "canary_own_lag_ms": _lag_summary(canary.own_lag),
        "phase_wall_start": canary.wall_start,
        "canary_events": dict(canary.events),
        "canary_cpu_seconds": round(time.process_time(), 2),
        "attack": dict(sorted(attack_stats.items())),
        "server_rss_mib": rss,
        "server_cpu": cpu,
        "settings": {"seconds": args.seconds, "quiet_seconds": args.quiet_seconds, "rate": args.rate,
                     "attack_conns": args.attack_conns, "floods": args.floods,
                     "external_worker": args.external_worker, "canary_nice": args.canary_nice},
    }


def _lag_summary(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags)
    if not ordered:
        return {}
    return {"p50": round(ordered[len(ordered) // 2] * 1000, 1),
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
            "max": round(ordered[-1] * 1000, 1)}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'phase':<8} {'sent':>6} {'recv':>6} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in result["canary"].items():
        print(f"{name:<8} {row['sent']:>6} {row['received']:>6} {row['lost']:>5} {row['p50_ms']:>8} "
              f"{row['p99_ms']:>8} {row['max_ms']:>8}")
    print("\nattacker outcomes (flood.outcome: count):")
    for key, value in result["attack"].items():
        print(f"  {key:<48} {value:>8}")
    if result.get("server_rss_mib"):
        print(f"\nserver RSS MiB: {result['server_rss_mib']}; server CPU: {result.get('server_cpu')}")
    print(f"canary process's own loop lag ms: {result.get('canary_own_lag_ms')}")
    if result.get("server_log"):
        print(f"server log: {result['server_log']}")
    attack = result["canary"]["attack"]
    verdict = "PASS" if attack["p99_ms"] < 50 and attack["lost"] == 0 else "FAIL"
    print(f"\ngoal (p99 < 50 ms, nothing lost) under attack: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="attack phase length (default 20)")
    parser.add_argument("--quiet-seconds", type=float, default=5.0, help="quiet phase length (default 5)")
    parser.add_argument("--rate", type=float, default=50.0, help="canary chat lines per second (default 50)")
    parser.add_argument("--attack-conns", type=int, default=400, help="idle connections the flood keeps open")
    parser.add_argument("--floods", default="connections,big_replies,hashing,bot_adds",
                        help="comma list of floods to run (default: all four)")
    parser.add_argument("--external-worker", action="store_true",
                        help="run bots in a separate `voicebot worker` process (serve --local-worker 0), as a "
                             "deployment that isolates the hub from bot media work would")
    parser.add_argument("--canary-nice", type=int, default=0,
                        help="nice increment for this (canary) process, e.g. -5 as root on a shared machine")
    parser.add_argument("--url", help="use a running server instead of starting one (its quotas apply)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--server-log", metavar="FILE", help="keep the server's log (warnings and errors) here")
    parser.add_argument("--stall-report", metavar="FILE",
                        help="run the server under scripts/benchmarks/stallprobe.py (long event-loop steps, GC "
                             "pauses, stacks during long steps) and write its JSON here")
    parser.add_argument("--attacker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        attacker_main(args.attacker, args.seconds, args.attack_conns, args.floods)
        return 0
    if args.canary_nice:
        os.nice(args.canary_nice)  # e.g. -5 (root only): the canary stands for a client on another machine
    with tempfile.TemporaryDirectory(prefix="voicebot-isolation-") as tmp:
        proc = None
        if args.url:
            url = args.url
        else:
            log_path = Path(tmp) / "serve.log"
            proc, url = start_server(log_path, Path(tmp) / "bench.db", args.external_worker, args.stall_report)
        worker = None
        if args.external_worker:
            worker = subprocess.Popen(
                [sys.executable, "-m", "voicebot.cli", "worker", "--server", url, "--capacity", "12",
                 "--log-level", "warning"], env={**os.environ, "VOICEBOT_WORKER_TOKEN": WORKER_TOKEN},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)  # registration
        try:
            result = trio.run(bench, url, args, proc.pid if proc else None)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(10)
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if proc is not None:
            text = (Path(tmp) / "serve.log").read_text(errors="replace")
            if args.server_log:
                Path(args.server_log).write_text(text)
            result["server_log"] = {"tracebacks": text.count("Traceback"),
                                    "internal_errors": text.count("code=internal_error"), "lines": text.count("\n")}
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
