"""The servers under test: the voicebot hub (optionally with fault points stubbed), a bare trio-websocket echo
server (the stack's ceiling: no parsing, no routing) and a minimal trio-websocket relay (what the same stack does
when it must parse, route and re-serialise each message, and nothing else)."""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import sys
import time
from collections.abc import Generator
from functools import partial
from typing import Any

import orjson
import trio
import trio_websocket

from .common import ROOT


# -- the servers -------------------------------------------------------------------------------------------
def _serve(name: str, handler: Any, host: str, port: int) -> int:
    """Serve WebSocket ``handler`` on ``host:port`` (0: any free port; the line ``NAME server listening on URL`` says
    which) until SIGTERM or SIGINT."""

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(
                    partial(trio_websocket.serve_websocket, handler, host, port, None, max_message_size=65536)
                )
                print(f"{name} server listening on ws://{host}:{server.port}/ws", flush=True)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

    raise_nofile()
    trio.run(main)
    return 0


def run_echo_server(host: str, port: int) -> int:
    """Raw trio-websocket echo server: every message goes back to its sender, as is."""

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    return _serve("echo", handler, host, port)


def run_relay_server(host: str, port: int) -> int:
    """Minimal trio-websocket relay: the first message (``hello``) is answered ``welcome {peer_id}``; every other one
    names a peer in ``to`` and goes to that peer as ``{type, from, kind, sdp}`` (parsed and re-serialised with
    orjson, as the hub does). No lobbies, limits, validation beyond the lookup, or error replies: what is left of a
    relay when everything a production server adds is taken away."""
    peers: dict[str, trio_websocket.WebSocketConnection] = {}
    ids = iter(range(1, 1 << 62))

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        peer_id = ""
        try:
            hello = orjson.loads(await ws.get_message())
            peer_id = f"r{next(ids)}"
            peers[peer_id] = ws
            await ws.send_message(orjson.dumps({"type": "welcome", "peer_id": peer_id,
                                                "reply_to": hello.get("id")}).decode())
            while True:
                message = orjson.loads(await ws.get_message())
                target = peers.get(message.get("to"))
                if target is None:
                    continue
                out = {"type": "signal", "from": peer_id, "kind": message.get("kind"), "sdp": message.get("sdp")}
                with contextlib.suppress(trio_websocket.ConnectionClosed):  # the receiver left: dropped
                    await target.send_message(orjson.dumps(out).decode())
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            peers.pop(peer_id, None)

    return _serve("relay", handler, host, port)


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
    raise_nofile()
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


def raise_nofile(need: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard and (need == 0 or soft < need):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


async def stop_process(proc: trio.Process, timeout: float = 10.0) -> None:
    """Stop a server process (shielded): SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(timeout):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
