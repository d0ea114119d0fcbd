"""The load generator: N raw trio-websocket clients in lobbies, sending timestamped signals."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

import trio
import trio_websocket

from .common import CLOSE_MARK, MARK
from .procstats import percentiles, proc_cpu_seconds, proc_memory_mb, self_cpu_seconds, system_busy_seconds


def add_load_arguments(parser: argparse.ArgumentParser, *, clients: int, rate: float) -> None:
    """The load generator's options (what :class:`LoadRun` reads from its ``args``), with the script's own defaults
    for ``--clients`` and ``--rate``; the script checks the values after parsing (its limits differ)."""
    parser.add_argument("--clients", type=int, default=clients, help=f"connected clients (default {clients})")
    parser.add_argument("--lobbies", type=int, default=None, help="lobbies (default clients/10; 2..64 per lobby)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring (default 2)")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for in-flight messages")
    parser.add_argument("--rate", type=float, default=rate,
                        help=f"messages/s per client, open loop (default {rate:g}); 0 = as fast as --window allows")
    parser.add_argument("--window", type=int, default=4, help="with --rate 0: messages in flight per client")
    parser.add_argument("--size", type=int, default=400, help="approximate frame size in bytes (default 400)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' random.Random streams")
    parser.add_argument("--outbox-size", type=int, default=4096, help="hub --outbox-size (default 4096)")
    parser.add_argument("--connect-concurrency", type=int, default=100, help="simultaneous connection setups")
    parser.add_argument("--setup-timeout", type=float, default=60.0, help="seconds allowed to connect and join")
    parser.add_argument("--request-timeout", type=float, default=20.0, help="seconds per setup request")


# -- the load generator ------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    kind: str  # "hub", "echo", "relay" or "peerjs"
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
        """Where every client connects (see :meth:`url_for`)."""
        self.kind = kind
        self.args = args
        self.rec = Recorder()
        self.clients = [BenchClient(i, Random(args.seed * 1_000_003 + i)) for i in range(args.clients)]
        pad = max(0, args.size - 150)
        self.padding = "a=x-pad:" + "x" * pad + "\\r\\n" if pad else ""
        self.side_pids: dict[str, int] = {}
        """Other processes whose CPU during the window is reported apart (``side_cpu_pct``, e.g. redis-server)."""
        self.perf0 = time.perf_counter_ns()
        self.trio0 = trio.current_time()

    def url_for(self, c: BenchClient) -> str:
        """The server ``c`` connects to (one server here; a cluster run spreads clients over hubs)."""
        if self.kind == "peerjs":
            return f"{self.url}?key=peerjs&id={c.peer_id}&token=t{c.idx}"
        return self.url

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
                if "reply_to" in message or (mtype == "OPEN" and self.kind == "peerjs"):
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
            what = re.sub(r"\(payload=.*\) cannot", "(...) cannot", describe(leaf))  # one key, not one per ping
            self.rec.task_errors[f"{phase}: {what}"[:120]] += 1

    async def connect(self, c: BenchClient, conns: trio.Nursery, limit: trio.CapacityLimiter) -> None:
        nursery: trio.Nursery = await conns.start(self.hold, c)
        async with limit:
            try:
                with trio.fail_after(self.args.request_timeout):
                    c.ws = await trio_websocket.connect_websocket_url(nursery, self.url_for(c))
            except (OSError, trio_websocket.HandshakeError, trio.TooSlowError) as exc:
                self.rec.errors[f"connect failed: {type(exc).__name__}: {exc}"[:120]] += 1
                raise
            nursery.start_soon(self.reader, c)
            if self.kind == "peerjs":  # the id was chosen in the URL; OPEN says the server registered it
                with trio.fail_after(self.args.request_timeout):
                    await c.reply_event.wait()
            elif self.kind in ("hub", "relay"):  # the minimal relay answers hello with a peer id too
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
        if self.kind == "peerjs":  # what a PeerJS client sends for an answer (the server adds "src")
            return (f'{{"type":"ANSWER","dst":"{to}","payload":{{"sdp":{{"type":"answer","sdp":"v=0\\r\\n'
                    f'{MARK}{c.idx} {dst} {c.sent} {sched_ns} {send_ns}\\r\\n{self.padding}"}},'
                    f'"type":"media","connectionId":"mc_{c.idx}_{dst}"}}}}')
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
                dst = c.rng.choice(c.peers) if self.kind != "echo" else c.idx
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

    async def run(self, server_pid: int | Sequence[int]) -> dict[str, Any]:
        """Connect, hello and join every client, then measure; returns the result fields.

        ``server_pid`` may list several server processes (hubs of a cluster): CPU is their sum, RSS is given
        per process (``server_rss_mb_per_process``) and in total."""
        server_pids = [server_pid] if isinstance(server_pid, int) else list(server_pid)
        result: dict[str, Any] = {"url": self.url}
        async with trio.open_nursery() as conns:
            try:
                await self.setup(conns, result)
            except Exception as exc:  # TooSlowError, connect errors, error replies (as groups too)
                result["failed"] = f"setup: {describe(exc)}"
                result["connected"] = sum(c.ws is not None for c in self.clients)
                self.rec.stopping = True
                conns.cancel_scope.cancel()
                return result | self.summary(result)
            result["server_memory_after_setup_mb"] = _memory(server_pids)
            await trio.sleep(0.5)  # let the join traffic settle
            if self.args.sweep:
                summary = await self.sweep(server_pids, result)
            else:
                await self.measure(server_pids, result, self.args.rate)
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
        if self.kind == "peerjs":  # PeerJS has no lobbies: the same groups, kept by the clients
            for c in self.clients:
                c.peer_id = f"bench{c.idx}"
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

    async def sweep(self, server_pid: list[int], result: dict[str, Any]) -> dict[str, Any]:
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
            "other_processes_cpu_pct", "server_rss_mb_peak_window", "server_rss_mb_per_process",
            "server_memory_end_mb")}
        summary["sweep"] = stages
        summary["max_sustainable"] = None if best is None else {
            "rate_per_client": best["rate"], "delivered_msg_s": best["throughput_msg_s"],
            "latency_p99_ms": best["latency_ms"]["p99"]}
        return summary

    async def measure(self, server_pid: list[int], result: dict[str, Any], rate: float) -> None:
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
            side0 = {name: proc_cpu_seconds(pid) for name, pid in self.side_pids.items()}
            cpu0, self_cpu0, t0 = _cpu(server_pid), self_cpu_seconds(), trio.current_time()
            busy0 = system_busy_seconds()
            peak_rss = [0.0] * len(server_pid)
            while trio.current_time() < w_end:
                await trio.sleep(min(0.5, max(0.0, w_end - trio.current_time())))
                peak_rss = [max(peak, proc_memory_mb(pid).get("VmRSS", 0.0))
                            for peak, pid in zip(peak_rss, server_pid, strict=True)]
            cpu1, self_cpu1, t1 = _cpu(server_pid), self_cpu_seconds(), trio.current_time()
            side1 = {name: proc_cpu_seconds(pid) for name, pid in self.side_pids.items()}
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
        side = {name: side1[name] - side0[name] for name in side0}
        if side:
            result["side_cpu_pct"] = {name: round(100 * v / elapsed, 1) for name, v in side.items()}
        others = (busy1 - busy0) - (cpu1 - cpu0) - (self_cpu1 - self_cpu0) - sum(side.values())
        result["other_processes_cpu_pct"] = round(max(0.0, 100 * others / elapsed), 1)
        result["window_s"] = round(elapsed, 3)
        memories = [proc_memory_mb(pid) for pid in server_pid]
        per_process = [round(max(peak, m.get("VmRSS", 0.0)), 1) for peak, m in zip(peak_rss, memories, strict=True)]
        result["server_rss_mb_per_process"] = per_process
        result["server_rss_mb_peak_window"] = round(sum(per_process), 1)
        result["server_memory_end_mb"] = memories[0] if len(memories) == 1 else memories

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


def _cpu(pids: list[int]) -> float:
    return sum(proc_cpu_seconds(pid) for pid in pids)


def _memory(pids: list[int]) -> dict[str, float] | list[dict[str, float]]:
    memories = [proc_memory_mb(pid) for pid in pids]
    return memories[0] if len(memories) == 1 else memories


async def _close_quietly(ws: trio_websocket.WebSocketConnection) -> None:
    with contextlib.suppress(Exception):  # teardown: the connection may already be gone
        await ws.aclose()


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        first = exc.exceptions[0]
        return f"{len(exc.exceptions)} errors, first: {describe(first)}"
    return f"{type(exc).__name__}: {exc}"[:300]
