"""The hub's own Python per relayed ``signal``: µs per frame through ``Connection._on_frame``, with a breakdown.

Starts one server on 127.0.0.1 in this process, connects two raw WebSocket clients (hello, one lobby), and calls
the sender's ``Connection._on_frame`` directly with ``--frames`` signals to the other peer (the shape
``bench_relay.py`` sends), so no socket read or client CPU is counted. The receiver's bytes are drained by a task
of its own between calls. Rate limits and the heartbeat are out of the way. Reports the best of ``--repeat``
runs (µs per frame, wall clock around each call) and, from one run under cProfile, the function calls per frame (a
count that does not depend on the machine's load) and the cumulative µs per frame of each stage (profiled figures
are inflated by the profiler; compare them with each other, not with the plain figure). Run:

    .venv/bin/python scripts/bench_frame.py --frames 20000 --repeat 7 --json frame.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from voicebot.server import Server
from voicebot.server._connection import Connection
from voicebot.testing import settings_for_tests
from voicebot.testing._rawws import OP_TEXT, RawWebSocket

STAGES: dict[str, tuple[str, str]] = {
    "on_frame (total)": ("_connection.py", "_on_frame"),
    "protocol.decode": ("_codec.py", "decode"),
    "ctx.request": ("_handler.py", "request"),
    "bucket.take": ("_ratelimit.py", "take"),
    "quotas.take_request": ("_quotas.py", "take_request"),
    "protocol.validate": ("_codec.py", "validate"),
    "server.dispatch": ("_server.py", "dispatch"),
    "faults.point": ("_runtime.py", "point"),
    "core.run": ("_requests.py", "run"),
    "hub.request": ("_core.py", "request"),
    "core.carry_out": ("_requests.py", "carry_out"),
    "server.apply": ("_server.py", "apply"),
    "protocol.encode": ("_codec.py", "encode"),
    "connection.enqueue": ("_outbox.py", "enqueue"),
    "counters.count_sent": ("_hub.py", "count_sent"),
    "sync_context": ("_connection.py", "sync_context"),
    "counters.frame": ("_hub.py", "frame"),
}
"""Stage label → (file name, function name) as cProfile reports them."""


async def _read_json(ws: RawWebSocket) -> dict[str, Any]:
    with trio.fail_after(5):
        while True:
            got = await ws.read()
            assert got is not None, "server closed the connection"
            if got[0] == OP_TEXT:
                message: dict[str, Any] = json.loads(got[1])
                return message


async def _request(ws: RawWebSocket, message: dict[str, Any], expect: str) -> dict[str, Any]:
    await ws.send_text(json.dumps(message))
    while True:
        reply = await _read_json(ws)
        if reply.get("type") == expect:
            return reply
        if reply.get("type") == "error":
            raise RuntimeError(f"{message['type']}: {reply}")


async def _drain(ws: RawWebSocket) -> None:
    while await ws.stream.receive_some(1 << 16):
        pass


def _frames(to: str, n: int) -> list[str]:
    return [f'{{"type":"signal","to":"{to}","kind":"answer","sdp":"v=0\\r\\nbench {i}\\r\\n"}}' for i in range(n)]


async def _run(conn: Connection, frames: list[str]) -> float:
    """Seconds spent inside ``_on_frame`` for all ``frames`` (the drain task runs between calls)."""
    on_frame = conn._on_frame
    perf = time.perf_counter
    spent = 0.0
    for i, text in enumerate(frames):
        start = perf()
        await on_frame(text)
        spent += perf() - start
        if i % 64 == 63:
            await trio.lowlevel.checkpoint()  # let the receiver's drain task empty the socket
    return spent


async def main(frames: int, repeat: int) -> dict[str, Any]:
    """Best µs per frame over ``repeat`` runs of ``frames`` signals, and the profiled breakdown."""
    big = 10**9
    server = Server(settings_for_tests(host="127.0.0.1", request_rate=float(big), request_burst=big,
                                       request_rate_per_address=float(big), request_burst_per_address=big,
                                       heartbeat_interval=3600.0))  # the drained client never answers pings
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        host, port = server.addresses()[0].rsplit(":", 1)
        a = await RawWebSocket.connect(host, int(port))
        b = await RawWebSocket.connect(host, int(port))
        await _request(a, {"type": "hello", "name": "a"}, "welcome")
        welcome_b = await _request(b, {"type": "hello", "name": "b"}, "welcome")
        created = await _request(a, {"type": "lobby.create", "name": "bench"}, "lobby.created")
        lobby_id = created["lobby"]["id"]
        for ws in (a, b):
            await _request(ws, {"type": "lobby.join", "lobby_id": lobby_id}, "lobby.joined")
        conn_a = next(c for c in server.connections.values() if c.ctx.peer_id != welcome_b["peer_id"])
        errors_before = server.errors.total
        nursery.start_soon(_drain, b)
        texts = _frames(welcome_b["peer_id"], frames)
        await _run(conn_a, texts[: min(frames, 2000)])  # warm-up
        runs = [await _run(conn_a, texts) / frames * 1e6 for _ in range(repeat)]
        profiler = cProfile.Profile()
        profiler.enable()
        await _run(conn_a, texts)
        profiler.disable()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        calls = sum(row[1] for row in stats.values())  # every Python and C function call (deterministic)
        breakdown: dict[str, float] = {}
        for label, (file, func) in STAGES.items():
            cumulative = sum(row[3] for (path, _, name), row in stats.items()
                             if name == func and path.endswith(file))
            breakdown[label] = round(cumulative / frames * 1e6, 2)
        errors = server.errors.total - errors_before
        if errors:
            raise RuntimeError(f"{errors} of the signals failed: the benchmark measures error handling")
        server.shutdown()
        nursery.cancel_scope.cancel()
    return {"frames": frames, "repeat": repeat, "us_per_frame_best": round(min(runs), 2),
            "us_per_frame_median": round(sorted(runs)[len(runs) // 2], 2),
            "calls_per_frame": round(calls / frames, 1), "profiled_us_per_frame": breakdown}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000, help="signals per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs (the best and the median are reported)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = trio.run(main, args.frames, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'µs per frame, best of ' + str(args.repeat):<34}{result['us_per_frame_best']:>10}")
    print(f"{'µs per frame, median':<34}{result['us_per_frame_median']:>10}")
    print(f"{'function calls per frame':<34}{result['calls_per_frame']:>10}")
    print("profiled (cumulative µs per frame):")
    for label, value in result["profiled_us_per_frame"].items():
        print(f"  {label:<32}{value:>10}")
