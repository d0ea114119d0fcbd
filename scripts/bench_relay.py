#!/usr/bin/env python
"""Relay benchmark for the voicebot hub.

N WebSocket clients (one Trio process, raw ``trio_websocket``) join M lobbies on a hub server that runs as a
*separate process* and send ``signal`` messages to random peers of their own lobby. Every frame carries its
send time (``time.perf_counter_ns()``, system-wide CLOCK_MONOTONIC, so sender and receiver agree) in the SDP
(``s=bench SRC DST SEQ SCHED_NS SEND_NS``); the receiving client computes the end-to-end relay latency.

The same load shape is run against two baselines built on the same stack: a minimal trio-websocket relay (this
script with ``--relay-server``: ``hello`` gets a peer id, every other message is parsed, looked up by ``to`` and
re-serialised to that peer — nothing else) and a raw trio-websocket echo server (``--echo-server``: the frame comes
back to its sender unparsed; two network legs and one server hop like a relay, but no parsing or routing — the
stack's ceiling). Same frames, same clients, same rate.

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
    bench_relay.py --relay-server [--port 0]
    bench_relay.py --hub-server [--stub-fault-points] [voicebot serve flags...]

Examples::

    .venv/bin/python scripts/bench_relay.py --clients 1000 --duration 10
    .venv/bin/python scripts/bench_relay.py --clients 100 --rate 0 --json results.json
    .venv/bin/python scripts/bench_relay.py --clients 500 --compare-fault-points --targets hub --repeat 3
    .venv/bin/python scripts/bench_relay.py --clients 1000 --sweep 1,2,3,4,6 --duration 4 --warmup 1
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, TextIO

import trio
from benchmarks.common import LISTEN_RE, SCRIPT
from benchmarks.load import LoadRun, Target, add_load_arguments, describe
from benchmarks.peerjs import PEERJS_READY_RE, peerjs_command, peerjs_url, prepare
from benchmarks.procstats import system_busy_seconds
from benchmarks.report import compare, emit, fault_point_calls, machine_info, ratios, render_table
from benchmarks.servers import raise_nofile, run_echo_server, run_hub_server, run_relay_server, stop_process


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
                url = await _read_url(proc, target.kind)
                nursery.start_soon(_drain, proc)  # e.g. PeerJS logs every connection: a full pipe would stall it
                print(f"bench: {target.name}: {url} pid {proc.pid}; {args.clients} clients", file=log, flush=True)
                load = LoadRun(url, target.kind, args)
                stages = max(1, len(args.sweep))
                with trio.fail_after(args.setup_timeout + stages * (args.warmup + args.duration + args.drain + 5) + 30):
                    result |= await load.run(proc.pid)
            except Exception as exc:
                result["failed"] = describe(exc)
            finally:
                await stop_process(proc)
        result["server_exit_code"] = proc.returncode
        stderr_file.seek(0)
        lines = stderr_file.read().splitlines()
        result["server_stderr_lines"] = len(lines)
        result["server_stderr_tail"] = lines[-8:]
    return result


async def _read_url(proc: trio.Process, kind: str) -> str:
    assert proc.stdout is not None
    buffer = b""
    pattern = PEERJS_READY_RE if kind == "peerjs" else LISTEN_RE
    with trio.fail_after(20):
        while True:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"server exited before listening (code {await proc.wait()})")
            buffer += chunk
            match = pattern.search(buffer.decode(errors="replace"))
            if match:
                return peerjs_url(match.group(1)) if kind == "peerjs" else match.group(1)


async def _drain(proc: trio.Process) -> None:
    """Read the server's stdout away until it exits."""
    assert proc.stdout is not None
    while await proc.stdout.receive_some(65536):
        pass


_PROFILES = itertools.count(1)


def _profiled(args: argparse.Namespace, name: str, command: list[str]) -> list[str]:
    """With ``--profile DIR``: the server runs under cProfile, which writes DIR/NAME-N.prof when it exits (SIGTERM
    ends every server normally)."""
    if not args.profile:
        return command
    os.makedirs(args.profile, exist_ok=True)
    out = os.path.join(args.profile, f"{name}-{next(_PROFILES)}.prof")
    return [command[0], "-m", "cProfile", "-o", out, *command[1:]]


def hub_command(args: argparse.Namespace, stub: bool) -> list[str]:
    command = _profiled(args, "hub", [sys.executable, str(SCRIPT), "--hub-server"])
    if stub:
        command.append("--stub-fault-points")
    return [*command, "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--log-level", "warning",
            "--outbox-size", str(args.outbox_size), "--hello-timeout", "60",
            # every benchmark client comes from 127.0.0.1: lift the per-address quotas for this measurement
            "--max-connections-per-address", "0", "--connection-rate-per-address", "0",
            "--max-lobbies-per-address", "0", "--request-rate-per-address", "0", *shlex.split(args.hub_args)]


def echo_command(args: argparse.Namespace) -> list[str]:
    return _profiled(args, "echo", [sys.executable, str(SCRIPT), "--echo-server", "--port", "0"])


def relay_command(args: argparse.Namespace) -> list[str]:
    return _profiled(args, "relay", [sys.executable, str(SCRIPT), "--relay-server", "--port", "0"])


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
                targets.append(Target("echo", "echo", echo_command(args)))
            elif name == "relay":
                targets.append(Target("relay", "relay", relay_command(args)))
            elif name == "peerjs":
                if args.peerjs_script is not None:
                    targets.append(Target("peerjs", "peerjs", peerjs_command(args.peerjs_script)))
            else:
                raise SystemExit(f"bench_relay: unknown target {name!r} (hub, echo, relay, peerjs)")
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
        "peerjs": args.peerjs_note,
    }
    report["ratios"] = ratios(results)
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
    add_load_arguments(parser, clients=1000, rate=2.0)
    parser.add_argument("--sweep", type=_rates, default=[], metavar="R1,R2,...",
                        help="max-sustainable mode: measure at each per-client rate in turn (same connections, "
                             "--duration each) until delivery falls behind or p99 exceeds --slo-p99-ms")
    parser.add_argument("--slo-p99-ms", type=float, default=100.0, help="p99 latency bound for --sweep (100)")
    parser.add_argument("--targets", default="hub,relay,echo",
                        help="comma-separated: hub, relay (minimal trio-websocket relay), echo (bare echo), peerjs "
                             "(default hub,relay,echo; --peerjs adds peerjs)")
    parser.add_argument("--peerjs", nargs="?", const="", default=None, metavar="DIR",
                        help="also run the PeerJS server (npm install peer@1 into DIR, reused if there, or into a "
                             "temporary folder) under the same load in its message shape; skipped, with the "
                             "reason printed, when node or npm is missing or the install fails")
    parser.add_argument("--stub-fault-points", action="store_true",
                        help="run the hub with voicebot.faults point/check/message/record replaced by no-ops")
    parser.add_argument("--compare-fault-points", action="store_true",
                        help="run the hub with and without the stubs and report the difference")
    parser.add_argument("--repeat", type=int, default=1, help="run the target list this many times (default 1)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each target, wait up to SECONDS for other processes to go idle (shared hosts)")
    parser.add_argument("--hub-args", default="", metavar="FLAGS",
                        help="extra `voicebot serve` flags for the hub, e.g. '--local-worker 0'")
    parser.add_argument("--profile", metavar="DIR",
                        help="run the servers under cProfile: DIR/hub-N.prof, DIR/relay-N.prof, DIR/echo-N.prof")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': stdout)")
    parser.add_argument("--echo-server", action="store_true", help="internal: run the raw echo server")
    parser.add_argument("--relay-server", action="store_true", help="internal: run the minimal relay server")
    parser.add_argument("--port", type=int, default=0, help="internal: echo/relay server port (0 picks one)")
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
    if args.relay_server:
        return run_relay_server("127.0.0.1", args.port)
    args.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.peerjs_script, args.peerjs_note = None, None
    if args.peerjs is not None or "peerjs" in args.targets.split(","):
        args.peerjs_script, args.peerjs_note = prepare(args.peerjs or None)
        print(f"bench: {args.peerjs_note}", file=sys.stderr, flush=True)
        if "peerjs" not in args.targets.split(","):
            args.targets += ",peerjs"
    need = args.clients + 64
    soft = raise_nofile(need)
    if soft < need:
        print(f"bench_relay: {args.clients} clients need about {need} file descriptors per process, but "
              f"RLIMIT_NOFILE is {soft} (hard limit too); raise it with `ulimit -n`", file=sys.stderr)
        return 2
    report = trio.run(bench, args)
    return emit(report, render_table(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
