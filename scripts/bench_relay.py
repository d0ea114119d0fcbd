#!/usr/bin/env python
"""Relay benchmark for the voicebot hub (issue 2, item 7).

N WebSocket clients (one Trio process, raw ``trio_websocket``) join M lobbies on a hub server that runs as a
*separate process* and send ``signal`` messages to random peers of their own lobby. Every frame carries its
send time (``time.perf_counter_ns()``, system-wide CLOCK_MONOTONIC, so sender and receiver agree) in the SDP
(``s=bench SRC DST SEQ SCHED_NS SEND_NS``); the receiving client computes the end-to-end relay latency.

The same load shape is run against a raw trio-websocket echo server (this script with ``--echo-server``) as a
baseline: same frames, same clients, same rate, but the frame comes back to its sender (two network legs and one
server hop, like a relay).

Load model: open loop by default. Each client sends at a fixed ``--rate`` (messages/s) on its own schedule
(random phase), whatever the server does; a stalled send delays the following ones, which then go out
back-to-back, so nothing is silently skipped. ``latency`` is measured from the actual send call, ``latency (from
schedule)`` from the planned send time (corrects coordinated omission: it includes the time a frame waited
because the client or the TCP send buffer was stuck). ``--rate 0`` is the "max throughput" mode: each client
keeps at most ``--window`` of its messages in flight (sent, not yet delivered) and sends as fast as that allows.
``--sweep 1,2,4`` is the "max sustainable" mode: open-loop stages at rising per-client rates on the same
connections, stopping at the first one where delivery falls behind (< 95 % of offered) or p99 exceeds
``--slo-p99-ms``.

Server CPU% and RSS come from /proc/PID/stat and /proc/PID/status of the server process; "other procs CPU %" is
what the rest of the machine used during the window (a shared host skews every figure: look at it first; the
"bottleneck" row says OTHERS when it is >= 25 %). "CPU us/msg" (CPU time per delivered message) is the figure
least disturbed by other load, and the one to compare for --compare-fault-points.

Internal modes (used by the benchmark itself)::

    bench_relay.py --echo-server [--port 0]
    bench_relay.py --hub-server [--stub-fault-points] [voicebot serve flags...]

Examples::

    .venv/bin/python scripts/bench_relay.py --clients 1000 --duration 10
    .venv/bin/python scripts/bench_relay.py --clients 100 --rate 0 --json results.json
    .venv/bin/python scripts/bench_relay.py --clients 500 --compare-fault-points --targets hub --repeat 3
    .venv/bin/python scripts/bench_relay.py --clients 1000 --sweep 1,2,3,4,6 --duration 4 --warmup 1
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from random import Random
from typing import Any, TextIO

import trio
import trio_websocket

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
MARK = "s=bench "
CLOSE_MARK = "\\r"  # the JSON escape of the CR ending the marker line, as it appears in the raw frame text
LISTEN_RE = re.compile(r"listening on (ws://\S+)")
FAULT_STUBS = ("point", "check", "message", "record", "record_error", "invariant")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the two servers ---------------------------------------------------------------------------------------
def run_echo_server(host: str, port: int) -> int:
    """Raw trio-websocket echo server: every message goes back to its sender, as is."""

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(
                    partial(trio_websocket.serve_websocket, handler, host, port, None, max_message_size=65536)
                )
                print(f"echo server listening on ws://{host}:{server.port}/ws", flush=True)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

    _raise_nofile()
    trio.run(main)
    return 0


class _Done:
    """A completed awaitable (what the real ``faults.point`` returns when no plan is active)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


def stub_fault_points() -> list[str]:
    """Replace the injection-point functions of ``voicebot.faults`` with trivial no-ops (before the server is
    imported, so ``from voicebot.faults import point`` also gets the stub). Returns the names replaced."""
    from voicebot import faults  # noqa: PLC0415 (only the hub-server mode imports voicebot)
    from voicebot.faults import _runtime  # noqa: PLC0415

    done = _Done()

    def point(name: str, /, **ctx: Any) -> _Done:
        return done

    def check(name: str, /, **ctx: Any) -> None:
        return None

    def message(name: str, msg: Any, /, **ctx: Any) -> list[Any]:
        return [msg]

    def record(kind: str, /, **fields: Any) -> None:
        return None

    def record_error(exc: BaseException, /, **fields: Any) -> None:
        return None

    def invariant(ok: bool, name: str, /, **fields: Any) -> bool:
        return ok

    stubs = {"point": point, "check": check, "message": message, "record": record,
             "record_error": record_error, "invariant": invariant}
    replaced = []
    for name, stub in stubs.items():
        for module in (faults, _runtime):
            if hasattr(module, name):
                setattr(module, name, stub)
                replaced.append(f"{module.__name__}.{name}")
    return replaced


def run_hub_server(stub: bool, serve_args: list[str]) -> int:
    """``voicebot serve`` (exactly what the console script runs), optionally with fault points stubbed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    _raise_nofile()
    if stub:
        replaced = stub_fault_points()
        print(f"bench: stubbed {', '.join(replaced)}", file=sys.stderr, flush=True)
    from voicebot import cli  # noqa: PLC0415

    # Diagnostics for latency tails, e.g. BENCH_RELAY_HUB_GC=log or =freeze,log or =off (comma-separated):
    # log: time every cyclic-GC collection and print a summary per generation on exit; freeze: gc.freeze() after
    # the imports (what the server could do at start-up); off: gc.disable().
    modes = set(filter(None, os.environ.get("BENCH_RELAY_HUB_GC", "").split(",")))
    if "log" in modes:
        _log_gc()
    if "freeze" in modes:
        gc.collect()
        gc.freeze()
    if "off" in modes:
        gc.disable()
    if modes:
        print(f"bench: hub gc modes {sorted(modes)}", file=sys.stderr, flush=True)
    return cli.main(["serve", *serve_args])


def _log_gc() -> None:
    import atexit  # noqa: PLC0415

    started: list[float] = []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses[int(info["generation"])].append((time.perf_counter() - started[0]) * 1000)

    def report() -> None:
        for gen, values in pauses.items():
            if values:
                print(f"bench: gc gen{gen}: {len(values)} collections, total {sum(values):.0f} ms, "
                      f"max {max(values):.1f} ms", file=sys.stderr, flush=True)

    gc.callbacks.append(callback)
    atexit.register(report)


def _raise_nofile(need: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard and (need == 0 or soft < need):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


# -- process measurements ----------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024
    return out


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (not idle or iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: list[int], scale: float = 1e-6) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max/mean of nanosecond values, in ms (nearest rank)."""
    keys = ("p50", "p90", "p99", "p999", "max", "mean")
    if not values:
        return dict.fromkeys(keys)
    values = sorted(values)
    n = len(values)

    def rank(q: float) -> float:
        return round(values[min(n - 1, max(0, math.ceil(q * n) - 1))] * scale, 3)

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "p999": rank(0.999),
            "max": round(values[-1] * scale, 3), "mean": round(sum(values) / n * scale, 3)}


# -- the load generator ------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    kind: str  # "hub" or "echo"
    command: list[str]


@dataclass(eq=False)
class BenchClient:
    idx: int
    rng: Random
    ws: trio_websocket.WebSocketConnection | None = None
    peer_id: str = ""
    lobby: int = 0
    peers: list[int] = field(default_factory=list)
    reply: dict[str, Any] | None = None
    reply_event: trio.Event = field(default_factory=trio.Event)
    credit: trio.Semaphore | None = None
    sent: int = 0


@dataclass(eq=False)
class Recorder:
    """Everything the receivers and senders count (single Trio thread: no locks)."""

    window_start: int = 2**63
    window_end: int = 2**63
    latencies: list[int] = field(default_factory=list)
    sched_latencies: list[int] = field(default_factory=list)
    send_lags: list[int] = field(default_factory=list)
    sent_window: int = 0
    delivered_window: int = 0  # sent in the window and delivered (by the end of the drain)
    recv_in_window: int = 0  # received during the window, whenever sent
    sent_total: int = 0
    recv_total: int = 0
    misrouted: int = 0
    other_events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    task_errors: Counter[str] = field(default_factory=Counter)
    stopping: bool = False
    senders_done: bool = False
    all_delivered: trio.Event = field(default_factory=trio.Event)


class LoadRun:
    def __init__(self, url: str, kind: str, args: argparse.Namespace) -> None:
        self.url = url
        self.kind = kind
        self.args = args
        self.rec = Recorder()
        self.clients = [BenchClient(i, Random(args.seed * 1_000_003 + i)) for i in range(args.clients)]
        pad = max(0, args.size - 150)
        self.padding = "a=x-pad:" + "x" * pad + "\\r\\n" if pad else ""
        self.perf0 = time.perf_counter_ns()
        self.trio0 = trio.current_time()

    def trio_to_ns(self, t: float) -> int:
        return self.perf0 + int((t - self.trio0) * 1e9)

    # receiving
    async def reader(self, c: BenchClient) -> None:
        clients = self.clients
        assert c.ws is not None
        try:
            while True:
                text = await c.ws.get_message()
                now = time.perf_counter_ns()
                rec = self.rec  # a new one per sweep stage
                i = text.find(MARK) if isinstance(text, str) else -1
                if i >= 0:
                    assert isinstance(text, str)
                    src_s, dst_s, _seq, sched_s, sent_s = text[i + 8:text.find(CLOSE_MARK, i)].split()
                    sent = int(sent_s)
                    src = int(src_s)
                    rec.recv_total += 1
                    if int(dst_s) != c.idx:
                        rec.misrouted += 1
                    if rec.window_start <= sent < rec.window_end:
                        rec.delivered_window += 1
                        rec.latencies.append(now - sent)
                        rec.sched_latencies.append(now - int(sched_s))
                        if rec.senders_done and rec.delivered_window >= rec.sent_window:
                            rec.all_delivered.set()
                    if rec.window_start <= now < rec.window_end:
                        rec.recv_in_window += 1
                    credit = clients[src].credit
                    if credit is not None:
                        credit.release()
                    continue
                message = json.loads(text)
                mtype = message.get("type")
                if "reply_to" in message:
                    c.reply = message
                    c.reply_event.set()
                elif mtype == "error":
                    rec.errors[f"server error {message.get('code')}"] += 1
                else:
                    rec.other_events[str(mtype)] += 1
        except trio_websocket.ConnectionClosed as exc:
            if not self.rec.stopping:
                reason = exc.reason
                code, text = (reason.code, reason.reason or "") if reason is not None else (None, "")
                self.rec.errors[f"closed {code} {text}".strip()] += 1

    async def request(self, c: BenchClient, message: dict[str, Any]) -> dict[str, Any]:
        assert c.ws is not None
        c.reply_event = trio.Event()
        await c.ws.send_message(json.dumps({**message, "id": 1}))
        with trio.fail_after(self.args.request_timeout):
            await c.reply_event.wait()
        assert c.reply is not None
        if c.reply.get("type") == "error":
            raise RuntimeError(f"{message['type']}: {c.reply.get('code')}: {c.reply.get('message')}")
        return c.reply

    # setup
    async def hold(self, c: BenchClient, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED) -> None:
        """A nursery of one client's own (trio-websocket's reader task and ours), so that an exception escaping
        one client's tasks is counted and cannot tear down the other clients or the measurement."""
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(nursery)
                await trio.sleep_forever()
        except Exception as exc:
            # e.g. trio-websocket #184: a ping arriving while we close makes its reader task raise
            # LocalProtocolError("Event Pong ... cannot be sent in state LOCAL_CLOSING") instead of ending quietly
            leaf = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
            phase = "teardown" if self.rec.stopping else "client"
            what = re.sub(r"\(payload=.*\) cannot", "(...) cannot", _describe(leaf))  # one key, not one per ping
            self.rec.task_errors[f"{phase}: {what}"[:120]] += 1

    async def connect(self, c: BenchClient, conns: trio.Nursery, limit: trio.CapacityLimiter) -> None:
        nursery: trio.Nursery = await conns.start(self.hold, c)
        async with limit:
            try:
                with trio.fail_after(self.args.request_timeout):
                    c.ws = await trio_websocket.connect_websocket_url(nursery, self.url)
            except (OSError, trio_websocket.HandshakeError, trio.TooSlowError) as exc:
                self.rec.errors[f"connect failed: {type(exc).__name__}: {exc}"[:120]] += 1
                raise
            nursery.start_soon(self.reader, c)
            if self.kind == "hub":
                welcome = await self.request(c, {"type": "hello", "name": f"bench-{c.idx}"})
                c.peer_id = welcome["peer_id"]

    async def setup_lobby(self, members: list[BenchClient]) -> None:
        creator = members[0]
        reply = await self.request(creator, {"type": "lobby.create", "name": f"bench-{creator.lobby}",
                                             "max_members": len(members)})
        lobby_id = reply["lobby"]["id"]
        for c in members:  # in order, so peer.joined traffic stays small and predictable
            await self.request(c, {"type": "lobby.join", "lobby_id": lobby_id})

    def assign_lobbies(self) -> list[list[BenchClient]]:
        m = self.args.lobbies
        lobbies: list[list[BenchClient]] = [[] for _ in range(m)]
        for c in self.clients:
            c.lobby = c.idx % m
            lobbies[c.lobby].append(c)
        for members in lobbies:
            for c in members:
                c.peers = [p.idx for p in members if p is not c]
        return lobbies

    # sending
    def frame(self, c: BenchClient, dst: int, sched_ns: int, send_ns: int) -> str:
        to = self.clients[dst].peer_id or "echo"
        return (f'{{"type":"signal","to":"{to}","kind":"answer","sdp":"v=0\\r\\n{MARK}{c.idx} {dst} {c.sent} '
                f'{sched_ns} {send_ns}\\r\\n{self.padding}"}}')

    async def sender(self, c: BenchClient, start: float, stop: float, rate: float) -> None:
        rec = self.rec
        assert c.ws is not None
        ws = c.ws
        period = 1.0 / rate if rate > 0 else 0.0
        planned = start + c.rng.random() * period
        try:
            while True:
                if rate > 0:
                    if planned >= stop or trio.current_time() >= stop:  # a backlog past the window is dropped
                        return
                    await trio.sleep_until(planned)
                    sched_ns = self.trio_to_ns(planned)
                    planned += period
                else:
                    assert c.credit is not None
                    await c.credit.acquire()
                    if trio.current_time() >= stop:
                        return
                    sched_ns = 0
                dst = c.rng.choice(c.peers) if self.kind == "hub" else c.idx
                now = time.perf_counter_ns()
                if rate == 0:
                    sched_ns = now
                await ws.send_message(self.frame(c, dst, sched_ns, now))
                c.sent += 1
                rec.sent_total += 1
                if rec.window_start <= now < rec.window_end:
                    rec.sent_window += 1
                    rec.send_lags.append(now - sched_ns)
        except trio_websocket.ConnectionClosed:
            if not rec.stopping:
                rec.errors["send on closed connection"] += 1

    async def run(self, server_pid: int) -> dict[str, Any]:
        """Connect, hello and join every client, then measure; returns the result fields."""
        result: dict[str, Any] = {"url": self.url}
        async with trio.open_nursery() as conns:
            try:
                await self.setup(conns, result)
            except Exception as exc:  # TooSlowError, connect errors, error replies (as groups too)
                result["failed"] = f"setup: {_describe(exc)}"
                result["connected"] = sum(c.ws is not None for c in self.clients)
                self.rec.stopping = True
                conns.cancel_scope.cancel()
                return result | self.summary(result)
            result["server_memory_after_setup_mb"] = proc_memory_mb(server_pid)
            await trio.sleep(0.5)  # let the join traffic settle
            if self.args.sweep:
                summary = await self.sweep(server_pid, result)
            else:
                await self.measure(server_pid, result, self.args.rate)
                summary = self.summary(result)  # counted now: deliveries during the teardown do not count
            self.rec.stopping = True
            with trio.move_on_after(10):
                async with trio.open_nursery() as closing:
                    for c in self.clients:
                        if c.ws is not None:
                            closing.start_soon(_close_quietly, c.ws)
            conns.cancel_scope.cancel()
        task_errors = self.rec.task_errors
        summary["errors"] |= {k: v for k, v in task_errors.items() if not k.startswith("teardown")}
        # after the measurement, while closing: reported, but not counted as benchmark errors
        summary["teardown_errors"] = {k: v for k, v in task_errors.items() if k.startswith("teardown")}
        return result | summary

    async def setup(self, conns: trio.Nursery, result: dict[str, Any]) -> None:
        args = self.args
        lobbies = self.assign_lobbies()
        if self.kind == "echo":
            for c in self.clients:
                c.peers = [c.idx]
        t_setup = trio.current_time()
        limit = trio.CapacityLimiter(args.connect_concurrency)
        with trio.fail_after(args.setup_timeout):
            async with trio.open_nursery() as setup:
                for c in self.clients:
                    setup.start_soon(self.connect, c, conns, limit)
            if self.kind == "hub":
                async with trio.open_nursery() as setup:
                    for members in lobbies:
                        setup.start_soon(self.setup_lobby, members)
        result["connected"] = sum(c.ws is not None for c in self.clients)
        result["setup_s"] = round(trio.current_time() - t_setup, 2)

    async def sweep(self, server_pid: int, result: dict[str, Any]) -> dict[str, Any]:
        """Measure at each ``--sweep`` rate (same connections) until one is not sustainable: delivered < 95 %
        of offered or p99 above ``--slo-p99-ms``. The result's main figures are those of the best sustainable
        stage; every stage is kept in ``sweep``."""
        main = self.rec
        stages: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        for rate in self.args.sweep:
            self.rec = Recorder(errors=main.errors, task_errors=main.task_errors, other_events=main.other_events)
            stage: dict[str, Any] = {"rate": rate}
            await self.measure(server_pid, stage, rate)
            stage |= self.summary(stage)
            stages.append(stage)
            p99 = stage["latency_ms"]["p99"]
            ok = (stage["throughput_msg_s"] >= 0.95 * stage["offered_msg_s"] and p99 is not None
                  and p99 <= self.args.slo_p99_ms and not stage["errors"])
            stage["sustainable"] = ok
            print(f"bench:   rate {rate:g}/client: offered {stage['offered_msg_s']} delivered "
                  f"{stage['throughput_msg_s']} msg/s, p99 {p99} ms -> {'ok' if ok else 'NOT sustainable'}",
                  file=sys.stderr, flush=True)
            if not ok:
                break
            best = stage
        self.rec = main
        summary = dict(best if best is not None else stages[-1])
        result |= {k: v for k, v in summary.items() if k in (
            "server_cpu_pct", "client_cpu_pct", "server_cpu_s", "client_cpu_s", "window_s",
            "other_processes_cpu_pct", "server_rss_mb_peak_window", "server_memory_end_mb")}
        summary["sweep"] = stages
        summary["max_sustainable"] = None if best is None else {
            "rate_per_client": best["rate"], "delivered_msg_s": best["throughput_msg_s"],
            "latency_p99_ms": best["latency_ms"]["p99"]}
        return summary

    async def measure(self, server_pid: int, result: dict[str, Any], rate: float) -> None:
        args = self.args
        rec = self.rec
        for c in self.clients:
            c.credit = trio.Semaphore(max(1, args.window)) if rate == 0 else None
        start = trio.current_time() + 0.05
        w_start = start + args.warmup
        w_end = w_start + args.duration
        rec.window_start = self.trio_to_ns(w_start)
        rec.window_end = self.trio_to_ns(w_end)
        async with trio.open_nursery() as senders:
            for c in self.clients:
                senders.start_soon(self.sender, c, start, w_end, rate)
            await trio.sleep_until(w_start)
            cpu0, self_cpu0, t0 = proc_cpu_seconds(server_pid), self_cpu_seconds(), trio.current_time()
            busy0 = system_busy_seconds()
            peak_rss = 0.0
            while trio.current_time() < w_end:
                await trio.sleep(min(0.5, max(0.0, w_end - trio.current_time())))
                peak_rss = max(peak_rss, proc_memory_mb(server_pid).get("VmRSS", 0.0))
            cpu1, self_cpu1, t1 = proc_cpu_seconds(server_pid), self_cpu_seconds(), trio.current_time()
            busy1 = system_busy_seconds()
            # senders stop by themselves at w_end; one stuck in a send (or waiting for credit) is cut
            senders.cancel_scope.deadline = trio.current_time() + 2.0
        rec.senders_done = True
        if rec.delivered_window >= rec.sent_window:
            rec.all_delivered.set()
        with trio.move_on_after(args.drain):
            await rec.all_delivered.wait()
        elapsed = t1 - t0
        result["server_cpu_pct"] = round(100 * (cpu1 - cpu0) / elapsed, 1)
        result["client_cpu_pct"] = round(100 * (self_cpu1 - self_cpu0) / elapsed, 1)
        result["server_cpu_s"] = round(cpu1 - cpu0, 3)
        result["client_cpu_s"] = round(self_cpu1 - self_cpu0, 3)
        # CPU used by everything else on the machine during the window (other work skews the numbers)
        others = (busy1 - busy0) - (cpu1 - cpu0) - (self_cpu1 - self_cpu0)
        result["other_processes_cpu_pct"] = round(max(0.0, 100 * others / elapsed), 1)
        result["window_s"] = round(elapsed, 3)
        memory = proc_memory_mb(server_pid)
        result["server_rss_mb_peak_window"] = round(max(peak_rss, memory.get("VmRSS", 0.0)), 1)
        result["server_memory_end_mb"] = memory

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        rec = self.rec
        window = self.args.duration
        out: dict[str, Any] = {
            "sent_total": rec.sent_total, "received_total": rec.recv_total,
            "sent_window": rec.sent_window, "delivered_window": rec.delivered_window,
            "lost_window": rec.sent_window - rec.delivered_window,
            "offered_msg_s": round(rec.sent_window / window, 1),
            "throughput_msg_s": round(rec.recv_in_window / window, 1),
            "latency_ms": percentiles(rec.latencies),
            "latency_from_schedule_ms": percentiles(rec.sched_latencies),
            "send_lag_ms": percentiles(rec.send_lags),
            "misrouted": rec.misrouted,
            "other_events": dict(rec.other_events),
            "errors": dict(rec.errors) | dict(rec.task_errors),
        }
        cpu_s = result.get("server_cpu_s")
        if cpu_s is not None and rec.recv_in_window:
            out["server_cpu_us_per_msg"] = round(cpu_s * 1e6 / rec.recv_in_window, 2)
            out["client_cpu_us_per_msg"] = round(result["client_cpu_s"] * 1e6 / rec.recv_in_window, 2)
        return out


async def _close_quietly(ws: trio_websocket.WebSocketConnection) -> None:
    with contextlib.suppress(Exception):  # teardown: the connection may already be gone
        await ws.aclose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        first = exc.exceptions[0]
        return f"{len(exc.exceptions)} errors, first: {_describe(first)}"
    return f"{type(exc).__name__}: {exc}"[:300]


# -- orchestration -----------------------------------------------------------------------------------------
async def run_target(target: Target, args: argparse.Namespace, log: TextIO) -> dict[str, Any]:
    """Start the target server process, run the load against it, stop it; always returns a result."""
    print(f"bench: {target.name}: starting {' '.join(target.command)}", file=log, flush=True)
    with tempfile.TemporaryFile("w+") as stderr_file:
        result: dict[str, Any] = {"target": target.name, "command": target.command}
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(partial(
                trio.run_process, target.command, stdout=subprocess.PIPE, stderr=stderr_file, check=False,
            ))
            try:
                url = await _read_url(proc)
                print(f"bench: {target.name}: {url} pid {proc.pid}; {args.clients} clients", file=log, flush=True)
                load = LoadRun(url, target.kind, args)
                stages = max(1, len(args.sweep))
                with trio.fail_after(args.setup_timeout + stages * (args.warmup + args.duration + args.drain + 5) + 30):
                    result |= await load.run(proc.pid)
            except Exception as exc:
                result["failed"] = _describe(exc)
            finally:
                with trio.CancelScope(shield=True):
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                        with trio.move_on_after(10):
                            await proc.wait()
                        if proc.returncode is None:
                            proc.kill()
                            await proc.wait()
        result["server_exit_code"] = proc.returncode
        stderr_file.seek(0)
        lines = stderr_file.read().splitlines()
        result["server_stderr_lines"] = len(lines)
        result["server_stderr_tail"] = lines[-8:]
    return result


async def _read_url(proc: trio.Process) -> str:
    assert proc.stdout is not None
    buffer = b""
    with trio.fail_after(20):
        while True:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"server exited before listening (code {await proc.wait()})")
            buffer += chunk
            match = LISTEN_RE.search(buffer.decode(errors="replace"))
            if match:
                return match.group(1)


def hub_command(args: argparse.Namespace, stub: bool) -> list[str]:
    command = [sys.executable, str(SCRIPT), "--hub-server"]
    if stub:
        command.append("--stub-fault-points")
    return [*command, "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--log-level", "warning",
            "--outbox-size", str(args.outbox_size), "--hello-timeout", "60",
            # every benchmark client comes from 127.0.0.1: lift the per-address quotas (issue 12) for this measurement
            "--max-connections-per-address", "0", "--connection-rate-per-address", "0",
            "--max-lobbies-per-address", "0", "--request-rate-per-address", "0", *shlex.split(args.hub_args)]


def echo_command() -> list[str]:
    return [sys.executable, str(SCRIPT), "--echo-server", "--port", "0"]


def plan_targets(args: argparse.Namespace) -> list[Target]:
    targets: list[Target] = []
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    for _ in range(args.repeat):
        for name in wanted:
            if name == "hub":
                if args.compare_fault_points:
                    targets.append(Target("hub", "hub", hub_command(args, stub=False)))
                    targets.append(Target("hub-stubbed", "hub", hub_command(args, stub=True)))
                else:
                    label = "hub-stubbed" if args.stub_fault_points else "hub"
                    targets.append(Target(label, "hub", hub_command(args, stub=args.stub_fault_points)))
            elif name == "echo":
                targets.append(Target("echo", "echo", echo_command()))
            else:
                raise SystemExit(f"bench_relay: unknown target {name!r} (hub, echo)")
    return targets


async def wait_quiet(limit: float, log: TextIO) -> dict[str, float]:
    """Wait (at most ``limit`` s) until the machine's other work uses < 20 % of one CPU over one second."""
    start = trio.current_time()
    while True:
        busy0 = system_busy_seconds()
        await trio.sleep(1.0)
        busy_pct = 100 * (system_busy_seconds() - busy0)
        waited = trio.current_time() - start
        if busy_pct < 20 or waited >= limit:
            if busy_pct >= 20:
                print(f"bench: machine still busy ({busy_pct:.0f} % CPU) after {waited:.0f} s; running anyway",
                      file=log, flush=True)
            return {"waited_s": round(waited, 1), "busy_pct": round(busy_pct, 1)}


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    import wsproto  # noqa: PLC0415

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": cpu_model,
        "platform": platform.platform(), "python": platform.python_version(), "trio": trio.__version__,
        "trio_websocket": trio_websocket.__version__, "wsproto": wsproto.__version__,
        "nofile_soft": soft, "nofile_hard": hard, "loadavg_before": os.getloadavg(), "voicebot_git": _git_state(),
    }


def _git_state() -> str:
    """``HEAD`` of the checkout and whether voicebot/ has uncommitted changes (the code actually measured)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "voicebot"],
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' +uncommitted changes in voicebot/' if dirty else ''}" if head else "unknown"


def fault_point_calls() -> int:
    """How many injection-point calls the server code has outside voicebot/faults (0: nothing to measure)."""
    pattern = re.compile(r"\bfaults\.(point|check|message|record)\(|^\s*(?:await\s+)?(point|check|message)\(")
    total = 0
    for path in (ROOT / "voicebot").rglob("*.py"):
        if "faults" in path.parts:
            continue
        total += sum(1 for line in path.read_text().splitlines() if pattern.search(line))
    return total


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the hub / hub-stubbed runs and the relative difference (hub vs stubbed)."""

    def metric(r: dict[str, Any], key: str) -> float | None:
        value = r.get("latency_ms", {}).get(key.removeprefix("latency_")) if key.startswith("latency_") else r.get(key)
        return float(value) if isinstance(value, int | float) else None

    out: dict[str, Any] = {}
    for key in ("throughput_msg_s", "server_cpu_pct", "server_cpu_us_per_msg", "latency_p50", "latency_p99"):
        medians = {}
        for name in ("hub", "hub-stubbed"):
            values = sorted(v for r in results if r["target"] == name and (v := metric(r, key)) is not None)
            medians[name] = round(statistics.median(values), 3) if values else None
        real, stub = medians["hub"], medians["hub-stubbed"]
        diff = round(100 * (real - stub) / stub, 2) if real is not None and stub else None
        out[key] = {"hub": real, "hub-stubbed": stub, "diff_pct": diff}
    return out


def _bottleneck(r: dict[str, Any]) -> str:
    """Which process was (nearly) out of CPU: a result is only about the server when the client was not."""
    busy = [name for name, key in (("server", "server_cpu_pct"), ("client", "client_cpu_pct"))
            if (r.get(key) or 0) >= 85]
    if (r.get("other_processes_cpu_pct") or 0) >= 25:  # other work stole CPU: the numbers are not clean
        busy.append("OTHERS")
    return "+".join(busy) if busy else "none"


def render_table(report: dict[str, Any]) -> str:
    results: list[dict[str, Any]] = report["results"]
    p = report["parameters"]
    m = report["machine"]
    rate = f"sweep {p['sweep']}" if p["sweep"] else p["rate"] or f"max (window {p['window']})"
    head = (f"voicebot relay benchmark: {p['clients']} clients, {p['lobbies']} lobbies, rate "
            f"{rate} msg/s/client, {p['duration']} s "
            f"(+{p['warmup']} s warm-up), ~{p['size']} B frames, seed {p['seed']}\n"
            f"machine: {m['cpus_usable']} cpus ({m['cpu_model']}), python {m['python']}, trio {m['trio']}, "
            f"trio-websocket {m['trio_websocket']}, wsproto {m['wsproto']}, nofile {m['nofile_soft']}\n")

    def lat(r: dict[str, Any], key: str, q: str) -> str:
        v = r.get(key, {}).get(q)
        return "-" if v is None else f"{v:.2f}"

    rows: list[tuple[str, Any]] = [
        ("connected", lambda r: r.get("connected", "-")),
        ("setup s", lambda r: r.get("setup_s", "-")),
        ("offered msg/s", lambda r: r.get("offered_msg_s", "-")),
        ("delivered msg/s", lambda r: r.get("throughput_msg_s", "-")),
        ("undelivered (drain)", lambda r: r.get("lost_window", "-")),
        ("latency p50 ms", lambda r: lat(r, "latency_ms", "p50")),
        ("latency p90 ms", lambda r: lat(r, "latency_ms", "p90")),
        ("latency p99 ms", lambda r: lat(r, "latency_ms", "p99")),
        ("latency max ms", lambda r: lat(r, "latency_ms", "max")),
        ("sched-lat p99 ms", lambda r: lat(r, "latency_from_schedule_ms", "p99")),
        ("send lag p99 ms", lambda r: lat(r, "send_lag_ms", "p99")),
        ("server CPU %", lambda r: r.get("server_cpu_pct", "-")),
        ("server CPU us/msg", lambda r: r.get("server_cpu_us_per_msg", "-")),
        ("server RSS MiB", lambda r: r.get("server_rss_mb_peak_window", "-")),
        ("client CPU %", lambda r: r.get("client_cpu_pct", "-")),
        ("client CPU us/msg", lambda r: r.get("client_cpu_us_per_msg", "-")),
        ("other procs CPU %", lambda r: r.get("other_processes_cpu_pct", "-")),
        ("errors", lambda r: sum(r.get("errors", {}).values()) + r.get("misrouted", 0)),
        ("bottleneck", _bottleneck),
    ]
    names = [r["target"] for r in results]
    width = max(15, *(len(n) + 2 for n in names))
    lines = [head, f"{'':20}" + "".join(f"{n:>{width}}" for n in names)]
    for label, get in rows:
        lines.append(f"{label:20}" + "".join(f"{get(r)!s:>{width}}" for r in results))
    for r in results:
        if r.get("failed"):
            lines.append(f"{r['target']}: FAILED: {r['failed']}")
        if r.get("errors"):
            lines.append(f"{r['target']} errors: {r['errors']}")
        for stage in r.get("sweep", []):
            stage_lat = stage["latency_ms"]
            lines.append(f"{r['target']} sweep: rate {stage['rate']:g}/client: offered {stage['offered_msg_s']}, "
                         f"delivered {stage['throughput_msg_s']} msg/s, p50 {stage_lat['p50']} "
                         f"p99 {stage_lat['p99']} ms, server CPU {stage.get('server_cpu_pct')} %, "
                         f"others {stage.get('other_processes_cpu_pct')} % -> "
                         f"{'ok' if stage['sustainable'] else 'NOT sustainable'}")
        if "max_sustainable" in r:
            lines.append(f"{r['target']} max sustainable (p99 <= {p['slo_p99_ms']:g} ms): {r['max_sustainable']}")
        if r.get("teardown_errors"):
            lines.append(f"{r['target']} teardown errors (after the measurement): {r['teardown_errors']}")
        if r.get("server_stderr_lines"):
            lines.append(f"{r['target']} server stderr ({r['server_stderr_lines']} lines), last: "
                         + " | ".join(r["server_stderr_tail"][-3:]))
    comparison = report.get("fault_point_comparison")
    if comparison:
        lines.append(f"fault points (calls in server code: {report.get('fault_point_calls')}): hub vs hub-stubbed")
        for key, v in comparison.items():
            lines.append(f"  {key:24} {v['hub']!s:>10} {v['hub-stubbed']!s:>12}   diff {v['diff_pct']!s} %")
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    log = sys.stderr
    results = []
    for target in plan_targets(args):
        quiet = await wait_quiet(args.wait_quiet, log) if args.wait_quiet > 0 else None
        result = await run_target(target, args, log)
        if quiet is not None:
            result["waited_for_quiet"] = quiet
        results.append(result)
        await trio.sleep(0.5)  # let TIME_WAIT sockets and the other process settle
    report: dict[str, Any] = {
        "benchmark": "voicebot relay", "started": args.started, "machine": machine_info(),
        "parameters": {k: getattr(args, k) for k in (
            "clients", "lobbies", "rate", "window", "duration", "warmup", "drain", "size", "seed", "targets",
            "outbox_size", "hub_args", "stub_fault_points", "compare_fault_points", "repeat", "wait_quiet", "sweep",
            "slo_p99_ms")},
        "results": results,
    }
    if args.compare_fault_points:
        report["fault_point_calls"] = fault_point_calls()
        report["fault_point_comparison"] = compare(results)
    return report


def _rates(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("a comma-separated list of rates > 0")
    return rates


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000, help="connected clients (default 1000)")
    parser.add_argument("--lobbies", type=int, default=None, help="lobbies (default clients/10; 2..64 per lobby)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring (default 2)")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for in-flight messages")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="messages/s per client, open loop (default 2); 0 = as fast as --window allows")
    parser.add_argument("--sweep", type=_rates, default=[], metavar="R1,R2,...",
                        help="max-sustainable mode: measure at each per-client rate in turn (same connections, "
                             "--duration each) until delivery falls behind or p99 exceeds --slo-p99-ms")
    parser.add_argument("--slo-p99-ms", type=float, default=100.0, help="p99 latency bound for --sweep (100)")
    parser.add_argument("--window", type=int, default=4, help="with --rate 0: messages in flight per client")
    parser.add_argument("--size", type=int, default=400, help="approximate frame size in bytes (default 400)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' random.Random streams")
    parser.add_argument("--targets", default="hub,echo", help="comma-separated: hub, echo (default both)")
    parser.add_argument("--stub-fault-points", action="store_true",
                        help="run the hub with voicebot.faults point/check/message/record replaced by no-ops")
    parser.add_argument("--compare-fault-points", action="store_true",
                        help="run the hub with and without the stubs and report the difference")
    parser.add_argument("--repeat", type=int, default=1, help="run the target list this many times (default 1)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each target, wait up to SECONDS for other processes to go idle (shared hosts)")
    parser.add_argument("--hub-args", default="", metavar="FLAGS",
                        help="extra `voicebot serve` flags for the hub, e.g. '--local-worker 0'")
    parser.add_argument("--outbox-size", type=int, default=4096, help="hub --outbox-size (default 4096)")
    parser.add_argument("--connect-concurrency", type=int, default=100, help="simultaneous connection setups")
    parser.add_argument("--setup-timeout", type=float, default=60.0, help="seconds allowed to connect and join")
    parser.add_argument("--request-timeout", type=float, default=20.0, help="seconds per setup request")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': stdout)")
    parser.add_argument("--echo-server", action="store_true", help="internal: run the raw echo server")
    parser.add_argument("--port", type=int, default=0, help="internal: echo server port (0 picks one)")
    args = parser.parse_args(argv)
    if args.lobbies is None:
        args.lobbies = max(1, args.clients // 10)
    if args.clients < 2 or args.lobbies < 1 or args.duration <= 0 or args.rate < 0 or args.repeat < 1:
        parser.error("need --clients >= 2, --lobbies >= 1, --duration > 0, --rate >= 0, --repeat >= 1")
    per_lobby_min, per_lobby_max = args.clients // args.lobbies, math.ceil(args.clients / args.lobbies)
    if per_lobby_min < 2 or per_lobby_max > 64:
        parser.error(f"{args.clients} clients in {args.lobbies} lobbies gives {per_lobby_min}..{per_lobby_max} "
                     "per lobby; the hub allows 2..64 (max_members)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--hub-server"]:
        rest = argv[1:]
        stub = rest[:1] == ["--stub-fault-points"]
        return run_hub_server(stub, rest[1:] if stub else rest)
    args = parse_args(argv)
    if args.echo_server:
        return run_echo_server("127.0.0.1", args.port)
    args.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    need = args.clients + 64
    soft = _raise_nofile(need)
    if soft < need:
        print(f"bench_relay: {args.clients} clients need about {need} file descriptors per process, but "
              f"RLIMIT_NOFILE is {soft} (hard limit too); raise it with `ulimit -n`", file=sys.stderr)
        return 2
    report = trio.run(bench, args)
    table = render_table(report)
    if args.json == "-":
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    failed = any(r.get("failed") for r in report["results"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
