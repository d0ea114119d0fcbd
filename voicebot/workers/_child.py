"""The local worker process that ``voicebot serve`` supervises (``python -m voicebot.workers._child
--control-fd N``; see :mod:`voicebot.workers._process`). Not a command for people: it reads its configuration —
the hub's local worker token included — from the private channel it was given (:mod:`voicebot.workers._channel`).

It ignores SIGINT (a Ctrl-C in the terminal reaches the whole process group; the hub decides when its worker
stops), stops on SIGTERM, and stops when its channel reaches end of file: the hub's process is gone (the kernel
closes its end whichever way it ended). ``PR_SET_PDEATHSIG`` is not used because it fires when the *thread* that
spawned the child ends, and Trio spawns processes from its worker threads, which end when idle.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._gc import tune_gc
from ..bots import BotSpec
from ..client import Client, connect_stream
from ..errors import VoiceBotError, WebSocketError
from ._channel import CONNECT, REGISTERED, read_config, send, send_stats
from ._worker import Connector, Worker, WorkerConfig

__all__ = ["channel_connector", "main"]

log = logging.getLogger("voicebot.workers")

#: Seconds the child waits for its configuration.
CONFIG_TIMEOUT = 30.0
#: Seconds before the worker registers again after its control connection ended while the hub lives.
RECONNECT_DELAY = 1.0
#: Seconds the child's run has to end once the hub is gone before the process exits regardless.
ORPHAN_EXIT_TIMEOUT = 10.0
#: Seconds between checks of the assistant analytics sent to the hub.
STATS_INTERVAL = 2.0


def channel_connector(control: socket.socket, lock: trio.Lock) -> Connector:
    """Open hub connections through the channel: a fresh socket pair per connection, one end handed to the hub
    (``lock``: the channel's senders' lock)."""

    @asynccontextmanager
    async def open_one() -> AsyncIterator[Client]:
        ours, theirs = socket.socketpair()
        try:
            async with lock:
                await send(control, CONNECT, theirs.fileno())
        except OSError as exc:
            ours.close()
            raise WebSocketError(f"the hub's channel is closed ({exc})", code="worker_connection_lost",
                                 retryable=True) from None
        finally:
            theirs.close()
        async with connect_stream(trio.SocketStream(trio.socket.from_stdlib_socket(ours))) as client:
            yield client

    return open_one


async def _serve(control: socket.socket, lock: trio.Lock, bots: Mapping[str, BotSpec], config: WorkerConfig) -> None:
    connector = channel_connector(control, lock)
    while True:
        worker = Worker(bots, config)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_announce, control, lock, worker)
            try:
                await worker.run(connector)
            except (VoiceBotError, OSError, trio.TooSlowError) as exc:
                log.warning("local worker: %s; registering again in %g s", exc, RECONNECT_DELAY)
            nursery.cancel_scope.cancel()
        await trio.sleep(RECONNECT_DELAY)


async def _announce(control: socket.socket, lock: trio.Lock, worker: Worker) -> None:
    await worker.registered.wait()
    async with lock:
        await send(control, REGISTERED)


async def _report_stats(control: socket.socket, lock: trio.Lock) -> None:
    """Send this process's assistant analytics to the hub (``admin.stats``) every :data:`STATS_INTERVAL` seconds
    when they changed."""
    from ..bots.assistant import MEMORY  # noqa: PLC0415 - the memory module only, not the assistant's engines

    last: dict[str, Any] | None = None
    while True:
        snapshot = MEMORY.snapshot()
        if snapshot != last:
            async with lock:
                await send_stats(control, snapshot)
            last = snapshot
        await trio.sleep(STATS_INTERVAL)


async def _watch_hub(control: socket.socket, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` at end of file on the channel (the hub's process is gone)."""
    while True:
        await trio.lowlevel.wait_readable(control)
        try:
            data = control.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            break
    log.warning("the hub's process is gone: stopping")
    timer = threading.Timer(ORPHAN_EXIT_TIMEOUT, os._exit, args=(1,))
    timer.daemon = True
    timer.start()
    scope.cancel()


async def _until_sigterm(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            log.info("received SIGTERM: stopping")
            scope.cancel()
            return


async def _run(control: socket.socket, bots: Mapping[str, BotSpec], config: WorkerConfig) -> None:
    lock = trio.Lock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_until_sigterm, nursery.cancel_scope)
        nursery.start_soon(_watch_hub, control, nursery.cancel_scope)
        nursery.start_soon(_serve, control, lock, bots, config)
        nursery.start_soon(_report_stats, control, lock)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process: read the configuration, load the bots, tune the GC, serve."""
    parser = argparse.ArgumentParser(prog="python -m voicebot.workers._child")
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(args.control_fd, False)  # the bots' own subprocesses (e.g. espeak) never hold the channel
    control = socket.socket(fileno=args.control_fd)
    try:
        config = read_config(control, CONFIG_TIMEOUT)
    except (OSError, EOFError, ValueError) as exc:
        print(f"local worker: no configuration from the hub: {exc}", file=sys.stderr)
        return 2
    from ..bots import builtin_bots  # noqa: PLC0415 - after the channel is known good
    from ..bots.assistant import AssistantConfig  # noqa: PLC0415
    from ..media import MediaConfig  # noqa: PLC0415
    from ..providers import ProviderConfig, configure_providers  # noqa: PLC0415
    from ..server import Settings  # noqa: PLC0415

    try:
        settings = Settings(**config["settings"])
        configure_providers(ProviderConfig.from_settings(settings))
        worker_config = WorkerConfig(token=str(config["token"]), capacity=int(config["capacity"]),
                                     name=str(config.get("name", "local")))
    except (KeyError, TypeError, ValueError) as exc:
        print(f"local worker: bad configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    media = MediaConfig(allow_loopback=settings.media_allow_loopback, ice_servers=settings.ice_server_list(),
                        ice_deny_networks=settings.ice_deny_networks)
    bots = builtin_bots(media, AssistantConfig.from_settings(settings))
    log.info("local worker process %d: capacity %d, bots %s", os.getpid(), worker_config.capacity, sorted(bots))
    tune_gc()
    control.setblocking(False)
    trio.run(_run, control, bots, worker_config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
