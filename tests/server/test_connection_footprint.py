"""What an idle TCP connection past ``hello`` keeps on the server's heap (traced by ``tracemalloc``); the clients
run in a child process, so only the server's side is counted."""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc

import trio

from voicebot.server import Server
from voicebot.testing import settings_for_tests

CONNECTIONS = 300
#: Bytes per idle connection on the server's heap: ~22,050 measured here with trio 0.35, trio-websocket 0.12.2 and
#: wsproto 1.3 (~26,900 before the handshake state, three events per connection and the session's deque were
#: spared). The budget leaves room for noise, not for another kilobyte per connection.
BUDGET = 24_000

CLIENTS = """
import json, sys, trio, trio_websocket
async def main(url, count):
    async with trio.open_nursery() as nursery:
        for i in range(count):
            ws = await trio_websocket.connect_websocket_url(nursery, url, message_queue_size=4)
            await ws.send_message(json.dumps({"type": "hello", "name": f"idle{i}"}))
            assert json.loads(await ws.get_message())["type"] == "welcome"
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)
        nursery.cancel_scope.cancel()
trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def _open_clients(url: str, count: int) -> trio.Process:
    proc = await trio.lowlevel.open_process([sys.executable, "-c", CLIENTS, url, str(count)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with trio.fail_after(60):
        line = b""
        while b"ready" not in line:
            chunk = await proc.stdout.receive_some()
            assert chunk, "the clients' process ended early"
            line += chunk
    return proc


async def test_idle_connection_heap_footprint() -> None:
    server = Server(settings_for_tests(host="127.0.0.1", port=0, max_connections_per_address=0,
                                       connection_rate_per_address=0, request_rate_per_address=0,
                                       hello_timeout=60))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        url = f"ws://127.0.0.1:{server.port}/ws"
        warm = await _open_clients(url, 1)  # first-use loads (name tables, validators) are not per connection
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            proc = await _open_clients(url, CONNECTIONS)
            await trio.sleep(0.5)
            gc.collect()
            per_connection = (tracemalloc.get_traced_memory()[0] - before) / CONNECTIONS
            assert len(server.connections) == CONNECTIONS + 1
        finally:
            tracemalloc.stop()
        for p in (proc, warm):
            assert p.stdin is not None
            await p.stdin.send_all(b"\n")
            with trio.fail_after(10):
                await p.wait()
        server.shutdown()
    assert per_connection <= BUDGET, f"{per_connection:.0f} bytes per idle connection (budget {BUDGET})"
