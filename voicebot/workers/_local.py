"""A worker inside the server's process: on a thread of its own (``voicebot serve --local-worker-mode thread``) or
in the caller's Trio run (tests; ``voicebot serve`` runs its worker in a child process by default, see
:mod:`voicebot.workers._process`).

On its own thread (``own_thread=True``) the worker has its own Trio run (and its own asyncio loop for aiortc),
connected to the hub through a socket pair with the ordinary worker protocol: bot media work — SDP, DTLS, ICE,
Opus, audio framing, the media stack's first import — never runs as a step of the hub's event loop, so a client's
chat is not held up behind it (an in-process speaker-bot flood took the canary's p99 from ~10 ms to 460 ms on the
hub's thread, see README "Benchmarks"). The two threads still share the interpreter lock and the garbage
collector, so CPU-bound bot work is interleaved with the hub in switch-interval slices (5 ms) instead of whole
steps; the worker process (the default) and ``voicebot worker`` processes separate them completely.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..bots import BotSpec, builtin_bots
from ..bots.assistant import MEMORY
from ..client import Client, connect_stream
from ..errors import VoiceBotError, WebSocketError
from ..media import MediaConfig
from ..server import Server
from ._hub import BotHub
from ._worker import Connector, Worker, WorkerConfig, memory_connector

__all__ = ["run_local_worker", "thread_connector"]

log = logging.getLogger("voicebot.workers")

#: Seconds the hub waits for the worker thread to stop once asked (its bots' media are closed on the way).
THREAD_STOP_TIMEOUT = 5.0


async def run_local_worker(
    server: Server,
    bot_hub: BotHub,
    *,
    bots: Mapping[str, BotSpec] | None = None,
    capacity: int = 12,
    media: MediaConfig | None = None,
    reconnect_delay: float = 1.0,
    own_thread: bool = False,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a worker inside the server's process until the server stops.

    ``bots`` defaults to the built-ins (``echo``, ``speaker``) with ``media``'s peer-connection settings.
    ``task_status.started(worker)`` once the first registration succeeded. If the control connection is lost
    while the server keeps running, the worker reconnects after ``reconnect_delay`` seconds (its bots were
    already removed from their lobbies by the hub).

    Without ``own_thread`` the worker runs in this Trio run over in-memory streams (tests on the mock clock);
    with it, on a thread of its own (see the module docstring): cancelling this call stops that thread's run
    (bounded by :data:`THREAD_STOP_TIMEOUT`) and an error that ends it is raised here.
    """
    specs = dict(bots) if bots is not None else builtin_bots(media)
    config = WorkerConfig(token=bot_hub.local_token, capacity=capacity, name="local")
    if not own_thread:
        server.stats_sources.setdefault("assistants", MEMORY.snapshot)  # this process's assistants in admin.stats
        await _serve(server, specs, config, memory_connector(server), reconnect_delay=reconnect_delay,
                     task_status=task_status)
        return
    server.stats_sources.setdefault("assistants", _read_across_threads(MEMORY.snapshot))
    await _serve_in_thread(server, specs, config, reconnect_delay, task_status)


async def _serve(server: Server, specs: dict[str, BotSpec], config: WorkerConfig, connector: Connector, *,
                 reconnect_delay: float, task_status: trio.TaskStatus[Worker]) -> None:
    first = True
    while not server.stopping:
        worker = Worker(specs, config)
        try:
            if first:
                await worker.run(connector, task_status=task_status)
            else:
                await worker.run(connector)
        except VoiceBotError as exc:
            if server.stopping:
                return
            log.warning("local worker: %s; reconnecting", exc)
        first = first and not worker.registered.is_set()
        await trio.sleep(reconnect_delay)


class _StartedInHub:
    """A ``task_status`` for the worker thread's first registration: hands the worker to the hub's thread."""

    def __init__(self, hub_token: trio.lowlevel.TrioToken, started: trio.Event, box: list[Worker]) -> None:
        self._hub_token = hub_token
        self._started = started
        self._box = box

    def started(self, value: Worker | None = None) -> None:
        if value is not None:
            self._box.append(value)
        self._hub_token.run_sync_soon(self._started.set)


async def _serve_in_thread(server: Server, specs: dict[str, BotSpec], config: WorkerConfig,
                           reconnect_delay: float, task_status: trio.TaskStatus[Worker]) -> None:
    hub_token = trio.lowlevel.current_trio_token()
    registered, ended = trio.Event(), trio.Event()
    workers: list[Worker] = []
    failure: list[BaseException] = []
    control: dict[str, Any] = {}  # the worker thread's Trio token and root cancel scope

    async def thread_run() -> None:
        control["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            control["scope"] = scope
            status: Any = _StartedInHub(hub_token, registered, workers)
            await _serve(server, specs, config, thread_connector(server, hub_token), reconnect_delay=reconnect_delay,
                         task_status=status)

    def thread_main() -> None:
        try:
            trio.run(thread_run)
        except BaseException as exc:  # handed to the hub's thread, which raises it
            failure.append(exc)
        finally:
            with contextlib.suppress(trio.RunFinishedError):
                hub_token.run_sync_soon(ended.set)

    thread = threading.Thread(target=thread_main, name="voicebot-local-worker", daemon=True)
    thread.start()
    try:
        async with trio.open_nursery() as nursery:  # the first registration, or the thread's end
            for event in (registered, ended):
                nursery.start_soon(_set_then_cancel, event, nursery.cancel_scope)
        if workers:
            task_status.started(workers[0])
        await ended.wait()
    finally:
        with trio.CancelScope(shield=True):
            token, scope = control.get("token"), control.get("scope")
            if token is not None and scope is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(scope.cancel)
            with trio.move_on_after(THREAD_STOP_TIMEOUT):
                await ended.wait()
            if not ended.is_set():
                log.warning("local worker thread did not stop within %g s", THREAD_STOP_TIMEOUT)
            else:  # its run has ended; the thread itself ends right after (bounded join, off the loop)
                await trio.to_thread.run_sync(thread.join, 1.0)
    if failure:
        raise failure[0]


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def thread_connector(server: Server, hub_token: trio.lowlevel.TrioToken, remote: str = "local-worker") -> Connector:
    """Connect from another thread's Trio run to ``server`` (running in the run of ``hub_token``) through a socket
    pair: the hub serves its end like an accepted connection of the process's own (``remote`` names it in logs;
    ``trusted``: no per-address connection quotas)."""

    @asynccontextmanager
    async def open_one() -> AsyncIterator[Client]:
        ours, theirs = socket.socketpair()
        try:
            hub_token.run_sync_soon(_serve_socket, server, theirs, remote)
        except trio.RunFinishedError:
            ours.close()
            theirs.close()
            raise WebSocketError("the hub's event loop has stopped") from None
        async with connect_stream(trio.SocketStream(trio.socket.from_stdlib_socket(ours))) as client:
            yield client

    return open_one


def _serve_socket(server: Server, sock: socket.socket, remote: str) -> None:
    """In the hub's thread: serve one end of a socket pair (closed if the server has stopped). Runs as a
    ``run_sync_soon`` callback, where an exception would crash the hub's whole run: none escapes."""
    try:
        server.connect_stream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), remote, trusted=True)
    except Exception as exc:  # not running any more: the worker sees its connection end and stops or retries
        log.debug("local worker connection not served: %r", exc)
        sock.close()


def _read_across_threads(snapshot: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``snapshot`` read from the hub's thread while the worker thread may be changing what it copies: a copy
    interrupted by a change (``RuntimeError``: changed size during iteration) is taken again."""

    def read() -> dict[str, Any]:
        for _ in range(3):
            try:
                return snapshot()
            except RuntimeError:
                continue
        return snapshot()

    return read
