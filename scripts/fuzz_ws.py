#!/usr/bin/env python3
"""WebSocket fuzzer: drive a real ``voicebot serve`` with seeded, grammar-mutated frames; report what broke.

    scripts/fuzz_ws.py --frames 20000 --seed 1 [--connections 4] [--json out.json]

Starts ``voicebot serve`` (a fresh SQLite file beside the log, log to a file), opens ``--connections`` fuzzing
connections and one canary connection that pings every 50 ms, and sends ``--frames`` frames from
:func:`voicebot.testing._fuzzgen.generate` (valid messages of every request type mutated by field removal,
retyping, oversizing, deep nesting, lone surrogates, huge numbers; text, binary and fragmented frames;
protocol-invalid frames). Each fuzzing connection says hello, joins its own lobby, then sends batches of frames
followed by a sentinel ping and reads every reply; a closed connection is counted by close code and reopened.

Reports (table, and JSON with ``--json``): replies by type/code, closes by code (and whether each protocol-invalid
frame got its expected code), ``internal_error`` replies and 1011 closes, tracebacks in the server log, read
stalls, server RSS (start, after warm-up, end; growth counted from warm-up), canary RTT p50/p99/max, throughput,
and the digest of the generated frames: the same ``--seed``/``--frames``/``--connections`` always generate the same
frames (server-assigned ids are substituted at send time). Exit status 1 if any goal is missed
(0 internal errors, 0 tracebacks, 0 stalls, 0 wrong close codes; ``--max-rss-growth`` MiB, ``--max-canary-p99`` ms).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from voicebot.client import connect_stream
from voicebot.testing._fuzzgen import Frame, generate
from voicebot.testing._rawws import OP_CLOSE, OP_TEXT, RawWebSocket

BATCH = 32
READ_TIMEOUT = 10.0
MAX_MESSAGE_SIZE = 65536
CANARY_ADDRESS = "127.0.0.2"  # the canary is a bystander on an address of its own (per-address budgets)


def quotas(frames: int, connections: int) -> list[int]:
    """Frames per connection."""
    return [frames // connections + (1 if i < frames % connections else 0) for i in range(connections)]


def frame_stream(seed: int, index: int) -> Iterator[Frame]:
    """Connection ``index``'s frames (lazily: a million frames never sit in memory)."""
    return generate(random.Random(f"{seed}:{index}"), max_message_size=MAX_MESSAGE_SIZE)


def combine(digests: list[str]) -> str:
    """The run's digest from the per-connection digests (in connection order)."""
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def expected_digest(seed: int, frames: int, connections: int) -> str:
    """The digest a run with these parameters must report (the replay check), computed without a server."""
    digests = []
    for index, quota in enumerate(quotas(frames, connections)):
        h = hashlib.sha256()
        for fr in itertools.islice(frame_stream(seed, index), quota):
            h.update(fr.digest_bytes() + b"\x00")
        digests.append(h.hexdigest())
    return combine(digests)


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Peekable:
    def __init__(self, it: Iterator[Frame]) -> None:
        self._it = it
        self._next: Frame | None = None
        self._done = False

    def has_next(self) -> bool:
        if self._next is None and not self._done:
            self._next = next(self._it, None)
            self._done = self._next is None
        return self._next is not None

    def next(self) -> Frame:
        if not self.has_next():
            raise StopIteration
        fr, self._next = self._next, None
        assert fr is not None
        return fr


class Stats:
    def __init__(self) -> None:
        self.replies: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.wrong_close: Counter[str] = Counter()
        self.sent = 0
        self.stalls = 0
        self.reconnects = 0
        self.canary: list[float] = []
        self.canary_failures = 0


class Fuzzer:
    def __init__(self, host: str, port: int, stats: Stats, total: int) -> None:
        self.host, self.port, self.stats, self.total = host, port, stats, total
        self.peers: dict[int, str] = {}
        self.warm = trio.Event()
        self.digests: dict[int, str] = {}
        self.deadline = float("inf")
        """Trio time after which no new frame is sent (``--max-seconds``: a bounded run reports what it did)."""

    async def connection(self, index: int, frames: Iterator[Frame], quota: int) -> None:
        h = hashlib.sha256()

        def take() -> Iterator[Frame]:
            for fr in itertools.islice(frames, quota):
                h.update(fr.digest_bytes() + b"\x00")
                yield fr

        pending = _Peekable(take())
        generation = 0
        while pending.has_next() and trio.current_time() < self.deadline:
            generation += 1
            try:
                ws = await RawWebSocket.connect(self.host, self.port)
            except (OSError, ConnectionError):
                await trio.sleep(0.05)
                continue
            try:
                await self._session(index, generation, ws, pending)
            finally:
                self.peers.pop(index, None)
                with trio.CancelScope(shield=True):
                    await ws.aclose()
            self.stats.reconnects += 1
        self.digests[index] = h.hexdigest()  # over the frames taken (all of them unless --max-seconds cut the run)

    async def _session(self, index: int, generation: int, ws: RawWebSocket, pending: _Peekable) -> None:
        subst = {"@PEER@": "p_0", "@LOBBY@": "l_0", "@OTHER@": "p_0"}
        await ws.send_text(json.dumps({"type": "hello", "id": "hello", "name": f"fz{index}g{generation}"}))
        welcome = await self._until(ws, "hello")
        if welcome is None:
            return
        subst["@PEER@"] = self.peers[index] = welcome.get("peer_id", "p_0")
        await ws.send_text(json.dumps({"type": "lobby.create", "id": "create", "name": f"fz{index}"}))
        created = await self._until(ws, "create")
        if created is None:
            return
        if created.get("type") == "lobby.created":
            subst["@LOBBY@"] = created["lobby"]["id"]
            await ws.send_text(json.dumps({"type": "lobby.join", "id": "join", "lobby_id": subst["@LOBBY@"]}))
            if await self._until(ws, "join") is None:
                return
        batch = 0
        while pending.has_next() and trio.current_time() < self.deadline:
            fr = pending.next()
            others = [p for i, p in self.peers.items() if i != index]
            subst["@OTHER@"] = others[self.stats.sent % len(others)] if others else subst["@PEER@"]
            self.stats.sent += 1
            data = fr.wire(subst)
            # a mutated message (a few oversized fields at once) may itself exceed the limit: 1009 is then right
            expect = fr.expect_close or (1009 if len(data) > MAX_MESSAGE_SIZE else None)
            try:
                await ws.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.stats.closes["reset-on-send"] += 1
                return
            if self.stats.sent >= self.total // 10:
                self.warm.set()
            if expect is not None:
                code = await self._close_code(ws)
                self.stats.closes[str(code)] += 1
                if code != expect:
                    self.stats.wrong_close[f"{fr.label}: expected {expect}, got {code}"] += 1
                return
            batch += 1
            if batch >= BATCH or not pending.has_next():
                batch = 0
                sentinel = f"s{self.stats.sent}"
                await ws.send_text(json.dumps({"type": "ping", "id": sentinel}))
                if await self._until(ws, sentinel) is None:
                    return

    async def _until(self, ws: RawWebSocket, reply_to: str) -> dict[str, Any] | None:
        """Read and count replies until the one to ``reply_to``; None if the connection closed meanwhile."""
        with trio.move_on_after(READ_TIMEOUT):
            while True:
                got = await ws.read()
                if got is None:
                    self.stats.closes["tcp-dropped"] += 1
                    return None
                opcode, payload = got
                if opcode == OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.stats.closes[str(code)] += 1
                    if code == 1011:
                        self.stats.replies["close:1011"] += 1
                    return None
                if opcode != OP_TEXT:
                    continue
                message = json.loads(payload)
                kind = message.get("type")
                self.stats.replies[f"error:{message.get('code')}" if kind == "error" else str(kind)] += 1
                if message.get("reply_to") == reply_to:
                    return dict(message)
        self.stats.stalls += 1
        return None

    async def _close_code(self, ws: RawWebSocket) -> int | None:
        with trio.move_on_after(READ_TIMEOUT):
            code, before = await ws.read_close()
            for opcode, payload in before:
                if opcode == OP_TEXT:
                    message = json.loads(payload)
                    kind = message.get("type")
                    self.stats.replies[f"error:{message.get('code')}" if kind == "error" else str(kind)] += 1
            return code
        self.stats.stalls += 1
        return None

    async def canary(self, url: str, done: trio.Event) -> None:
        """Ping every 50 ms from another address (127.0.0.2): a bystander, not one of the fuzzing clients."""
        host, port = url.removeprefix("ws://").removesuffix("/ws").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port), local_address=CANARY_ADDRESS)
        async with connect_stream(stream) as client:
            await client.hello("canary")
            while not done.is_set():
                start = time.perf_counter()
                try:
                    await client.request("ping", timeout=5.0)
                    self.stats.canary.append((time.perf_counter() - start) * 1000)
                except Exception:
                    self.stats.canary_failures += 1
                await trio.sleep(0.05)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(log: Path, local_worker: int, db: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "voicebot.cli", "serve", "--port", "0", "--db", db, "--log-level",
           "warning", "--local-worker", str(local_worker), "--request-rate", "1000000", "--request-burst",
           "1000000", "--error-limit", "1000000000", "--max-lobbies", "500", "--admin-token", "fuzz-admin-token",
           "--max-message-size", str(MAX_MESSAGE_SIZE),
           # every fuzzing connection comes from 127.0.0.1: lift the per-address budgets so frames reach the
           # decoder instead of `rate_limited` (the canary connects from 127.0.0.2, its own address)
           "--max-connections-per-address", "0", "--connection-rate-per-address", "0",
           "--request-rate-per-address", "0", "--max-lobbies-per-address", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"ws://([^:/]+):(\d+)/ws", line)
    if not match:
        proc.kill()
        raise SystemExit(f"voicebot serve did not start: {line!r}\n{log.read_text()[-2000:]}")
    return proc, match.group(0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    log = Path(args.log)
    proc, url = start_server(log, args.local_worker, args.db)
    stats = Stats()
    started = time.perf_counter()
    try:
        host, port = re.search(r"ws://([^:/]+):(\d+)/ws", url).groups()  # type: ignore[union-attr]
        rss_start = rss_mib(proc.pid)
        fuzzer = Fuzzer(host, int(port), stats, args.frames)
        done = trio.Event()
        rss_warm = rss_start
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fuzzer.canary, url, done)

            async def warm_probe() -> None:
                # the minimum of 10 samples over 5 s: a transient peak (a password hash in flight) is not a baseline
                nonlocal rss_warm
                await fuzzer.warm.wait()
                samples = []
                for _ in range(10):
                    samples.append(rss_mib(proc.pid))
                    await trio.sleep(0.5)
                rss_warm = min(samples)

            nursery.start_soon(warm_probe)
            fuzzer.deadline = trio.current_time() + args.max_seconds

            async def progress() -> None:
                while True:
                    await trio.sleep(args.progress)
                    print(f"[{time.perf_counter() - started:7.0f} s] {stats.sent:,} frames, server RSS "
                          f"{rss_mib(proc.pid):.1f} MiB, canary p99 so far {_pct(stats.canary, 0.99):.1f} ms, "
                          f"internal errors {stats.replies.get('error:internal_error', 0)}", file=sys.stderr,
                          flush=True)

            if args.progress > 0:
                nursery.start_soon(progress)
            async with trio.open_nursery() as fuzzers:
                for i, quota in enumerate(quotas(args.frames, args.connections)):
                    fuzzers.start_soon(fuzzer.connection, i, frame_stream(args.seed, i), quota)
            fuzzer.warm.set()
            samples = []
            for _ in range(10):  # let the server settle; the minimum of 10 samples over 5 s, as for the baseline
                await trio.sleep(0.5)
                samples.append(rss_mib(proc.pid))
            rss_end = min(samples)
            done.set()
            nursery.cancel_scope.cancel()
    finally:
        elapsed = time.perf_counter() - started
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return build_report(args, stats, fuzzer, log, elapsed=elapsed, rss=(rss_start, rss_warm, rss_end))


def build_report(args: argparse.Namespace, stats: Stats, fuzzer: Fuzzer, log: Path, *, elapsed: float,
                 rss: tuple[float, float, float]) -> dict[str, Any]:
    """The run's figures and whether every goal was met."""
    rss_start, rss_warm, rss_end = rss
    server_log = log.read_text(errors="replace")
    tracebacks = server_log.count("Traceback (most recent call last)")
    internal = stats.replies.get("error:internal_error", 0) + stats.replies.get("close:1011", 0)
    growth = rss_end - rss_warm
    p99 = _pct(stats.canary, 0.99)
    report = {
        "seed": args.seed, "frames": args.frames, "connections": args.connections, "frames_sent": stats.sent,
        "frames_digest": combine([fuzzer.digests[i] for i in range(args.connections)]),
        "elapsed_s": round(elapsed, 1), "frames_per_s": round(stats.sent / elapsed, 1) if elapsed else 0.0,
        "replies": dict(stats.replies.most_common()), "closes": dict(stats.closes.most_common()),
        "wrong_close_codes": dict(stats.wrong_close), "internal_errors": internal, "tracebacks": tracebacks,
        "stalls": stats.stalls, "reconnects": stats.reconnects,
        "rss_mib": {"start": round(rss_start, 1), "warm": round(rss_warm, 1), "end": round(rss_end, 1),
                    "growth": round(growth, 1)},
        "canary_ms": {"samples": len(stats.canary), "failures": stats.canary_failures,
                      "p50": round(_pct(stats.canary, 0.5), 2), "p99": round(p99, 2),
                      "max": round(max(stats.canary, default=float("nan")), 2)},
        "server_log": str(log),
    }
    report["goals_met"] = bool(
        internal == 0 and tracebacks == 0 and stats.stalls == 0 and not stats.wrong_close
        and growth < args.max_rss_growth and p99 < args.max_canary_p99 and stats.canary_failures == 0
        and stats.sent == args.frames)
    return report


def print_table(report: dict[str, Any]) -> None:
    rows = [
        ("frames sent", f"{report['frames_sent']:,} of {report['frames']:,} ({report['connections']} connections)"),
        ("elapsed", f"{report['elapsed_s']} s ({report['frames_per_s']:,} frames/s)"),
        (f"frames digest (seed {report['seed']})", report["frames_digest"][:16]),
        ("internal_error replies + 1011 closes", report["internal_errors"]),
        ("tracebacks in server log", report["tracebacks"]),
        ("read stalls (> 10 s)", report["stalls"]),
        ("wrong close codes", sum(report["wrong_close_codes"].values())),
        ("reconnects", report["reconnects"]),
        ("server RSS start / warm / end (MiB)",
         f"{report['rss_mib']['start']} / {report['rss_mib']['warm']} / {report['rss_mib']['end']}"),
        ("RSS growth after warm-up (MiB)", report["rss_mib"]["growth"]),
        ("canary RTT p50 / p99 / max (ms)",
         f"{report['canary_ms']['p50']} / {report['canary_ms']['p99']} / {report['canary_ms']['max']}"
         f" ({report['canary_ms']['samples']} pings, {report['canary_ms']['failures']} failed)"),
        ("goals met", report["goals_met"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\nreplies by type / error code:")
    for key, count in report["replies"].items():
        print(f"  {key:<32} {count:>10,}")
    print("closes by code:")
    for key, count in report["closes"].items():
        print(f"  {key:<32} {count:>10,}")
    for key, count in report["wrong_close_codes"].items():
        print(f"  WRONG {key}: {count}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames to send in total (default 20000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the frame generator (default 1)")
    parser.add_argument("--connections", type=int, default=4, help="fuzzing connections (default 4)")
    parser.add_argument("--local-worker", type=int, default=0,
                        help="capacity of serve's in-process bot worker (default 0: bot.add gets bot_unknown)")
    parser.add_argument("--max-rss-growth", type=float, default=20.0, help="goal in MiB (default 20)")
    parser.add_argument("--max-canary-p99", type=float, default=50.0, help="goal in ms (default 50)")
    parser.add_argument("--max-seconds", type=float, default=float("inf"),
                        help="stop sending after this many seconds and report what was sent (default: no bound)")
    parser.add_argument("--progress", type=float, default=0.0,
                        help="print a progress line to stderr every this many seconds (default 0: none)")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--log", help="server log file (default: a temporary file)")
    parser.add_argument("--db", help="server database (default: fuzz.db beside the log, recreated; ':memory:' keeps "
                                     "the audit log in RAM, so RSS then grows with every audited connection)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args.log = args.log or str(Path(tempfile.mkdtemp(prefix="fuzz_ws_")) / "server.log")
    args.db = args.db or str(Path(args.log).with_name("fuzz.db"))
    if args.db != ":memory:":
        for leftover in (args.db, args.db + "-wal", args.db + "-shm"):
            Path(leftover).unlink(missing_ok=True)
    report = trio.run(run, args)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("replies", "closes")}))
    return 0 if report["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
