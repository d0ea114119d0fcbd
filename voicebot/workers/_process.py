"""``voicebot serve``'s local worker in a child process (the default ``--local-worker-mode process``).

Bots — TTS, Opus, DTLS, the media stack's first import, their garbage — run in another interpreter, so none of it
holds the hub's interpreter lock or lengthens its collections: under a flood of bot adds and removes, a client's
chat is not held up (see README "Benchmarks"). The hub spawns ``python -m voicebot.workers._child`` with one end
of a private socket pair (see :mod:`voicebot.workers._channel`) and supervises it: a child that dies is started
again with capped exponential backoff (its bots already left their lobbies through the hub's worker-loss
handling), stopping the server terminates it (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`), and the child
ends itself when the hub's process is gone. The child's output reaches the hub's stderr, each line prefixed with
:data:`LOG_PREFIX`.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._channel import CONNECT, REGISTERED, STATS, read_stats, receive, send_config

if TYPE_CHECKING:
    from ..server import Server, Settings
    from ._hub import BotHub

__all__ = ["LOG_PREFIX", "STOP_TIMEOUT", "WorkerProcessFailed", "run_worker_process"]

log = logging.getLogger("voicebot.workers")

#: Seconds a child has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0
#: Restart delays: ``min(RESTART_MAX, RESTART_BASE * 2 ** failures)``; a child that lived ``STABLE_AFTER`` seconds
#: resets the count.
RESTART_BASE = 0.5
RESTART_MAX = 30.0
STABLE_AFTER = 60.0
#: Prefix of the child's lines on the hub's stderr.
LOG_PREFIX = b"local-worker| "
#: A line of the child's output longer than this is written out in pieces.
MAX_LINE = 65536


class WorkerProcessFailed(RuntimeError):
    """The first local worker process ended before it registered (a configuration or installation problem):
    ``voicebot serve`` stops with this rather than wait for bots that will never come."""


async def run_worker_process(
    server: Server, bot_hub: BotHub, settings: Settings, *, capacity: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the local worker as a supervised child process until cancelled.

    ``settings`` travel to the child (providers, media and assistant settings come from them), with ``capacity``
    and the hub's local worker token. ``task_status.started()`` once the first child registered; if it ends
    before that, :class:`WorkerProcessFailed` is raised. Later deaths are logged and the child restarted.
    """
    stats: dict[str, Any] = {}  # the current child's assistant analytics, for admin.stats
    server.stats_sources.setdefault("assistants", lambda: stats)
    failures = 0
    first = True
    while True:
        born = trio.current_time()
        status: Any = task_status if first else trio.TASK_STATUS_IGNORED
        registered, code = await _run_child(server, bot_hub, settings, capacity, task_status=status, stats=stats)
        stats.clear()
        if first and not registered:
            raise WorkerProcessFailed(f"the local worker process exited ({_describe(code)}) before it registered; "
                                      "see its output above (prefixed local-worker|)")
        first = False
        if server.stopping:
            return
        failures = 0 if trio.current_time() - born >= STABLE_AFTER else failures + 1
        delay = min(RESTART_MAX, RESTART_BASE * 2 ** failures)
        log.warning("local worker process ended (%s); its bots left their lobbies; restarting in %.1f s",
                    _describe(code), delay)
        await trio.sleep(delay)


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


async def _run_child(server: Server, bot_hub: BotHub, settings: Settings, capacity: int, *,
                     task_status: trio.TaskStatus[None], stats: dict[str, Any]) -> tuple[bool, int | None]:
    """One child's life: spawn, configure, serve its connections (and keep ``stats`` up to date) until its end
    of the channel closes or breaks the channel's rules, then reap it. Returns (whether it registered, its exit
    status)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    registered = False
    command = [sys.executable, "-m", "voicebot.workers._child", "--control-fd", str(theirs.fileno())]
    try:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(functools.partial(
                trio.run_process, command, check=False, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, deliver_cancel=_terminate,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}))  # provider keys travel in the environment only
            theirs.close()
            assert process.stdout is not None
            relay = trio.CancelScope(shield=True)
            nursery.start_soon(_relay_output, process.stdout, relay)
            log.info("local worker process %d started (capacity %d)", process.pid, capacity)
            try:
                try:
                    await send_config(ours, {"token": bot_hub.local_token, "capacity": capacity, "name": "local",
                                             "settings": attrs.asdict(settings)})
                    while True:
                        kind, attached = await receive(ours)
                        if not kind:
                            break  # the child closed its end: it is exiting (or gone)
                        if kind == CONNECT and attached is not None:
                            _serve_socket(server, attached)
                        elif kind == REGISTERED and not registered:
                            registered = True
                            task_status.started()
                        elif kind == STATS:
                            fresh = await read_stats(ours)
                            stats.clear()
                            stats.update(fresh)
                except (OSError, EOFError, ValueError) as exc:  # a reset channel, or one that broke its rules
                    log.warning("local worker process %d: channel failed (%s); stopping it", process.pid, exc)
                    process.terminate()
                with trio.move_on_after(STOP_TIMEOUT):
                    await process.wait()
                if process.returncode is None:
                    log.warning("local worker process %d closed its channel but did not exit; killing it",
                                process.pid)
                    process.kill()
                await process.wait()
            finally:  # the child has ended or is being stopped (SIGTERM, SIGKILL after STOP_TIMEOUT)
                relay.deadline = trio.current_time() + STOP_TIMEOUT + 1.0
        return registered, process.returncode
    finally:
        ours.close()
        theirs.close()


def _serve_socket(server: Server, sock: socket.socket) -> None:
    """Serve one connection of the child as one of the process's own (not held to per-address quotas)."""
    try:
        server.connect_stream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), "local-worker", trusted=True)
    except Exception as exc:  # the server stopped: the child sees the connection end
        log.debug("local worker connection not served: %r", exc)
        sock.close()


async def _terminate(process: trio.Process) -> None:
    """Cancelled: SIGTERM, then SIGKILL if the child has not exited within :data:`STOP_TIMEOUT`."""
    process.terminate()
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
        return
    log.warning("local worker process %d did not stop within %g s; killing it", process.pid, STOP_TIMEOUT)
    process.kill()


async def _relay_output(stream: trio.abc.ReceiveStream, scope: trio.CancelScope) -> None:
    """Copy the child's output to our stderr, line by line, each with :data:`LOG_PREFIX`, until it ends. ``scope``
    is shielded, so the child's last words while it stops are kept; its owner gives it a deadline once the child
    is being stopped."""
    out = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
    pending = b""
    with scope:
        async for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > MAX_LINE:
                lines.append(pending)
                pending = b""
            _write(out, lines)
    if pending:
        _write(out, [pending])


def _write(out: Any, lines: list[bytes]) -> None:
    if not lines:
        return
    data = b"".join(LOG_PREFIX + line + b"\n" for line in lines)
    if out is not None:
        out.write(data)
        out.flush()
    else:
        sys.stderr.write(data.decode(errors="replace"))

