"""The in-process worker that ``voicebot serve`` starts by default (one command gives working bots)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from ..bots import BotSpec, builtin_bots
from ..bots.assistant import MEMORY
from ..errors import VoiceBotError
from ..media import MediaConfig
from ..server import Server
from ._hub import BotHub
from ._worker import Worker, WorkerConfig, socket_connector

__all__ = ["run_local_worker"]

log = logging.getLogger("voicebot.workers")


async def run_local_worker(
    server: Server,
    bot_hub: BotHub,
    *,
    bots: Mapping[str, BotSpec] | None = None,
    capacity: int = 12,
    media: MediaConfig | None = None,
    reconnect_delay: float = 1.0,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a worker inside the server's process, connected through a Unix socket pair, until the server stops.

    ``bots`` defaults to the built-ins (``echo``, ``speaker``) with ``media``'s peer-connection settings.
    ``task_status.started(worker)`` once the first registration succeeded. If the control connection is lost
    while the server keeps running, the worker reconnects after ``reconnect_delay`` seconds (its bots were
    already removed from their lobbies by the hub).
    """
    specs = dict(bots) if bots is not None else builtin_bots(media)
    server.stats_sources.setdefault("assistants", MEMORY.snapshot)  # this process's assistants in admin.stats
    config = WorkerConfig(token=bot_hub.local_token, capacity=capacity, name="local")
    first = True
    while not server.stopping:
        worker = Worker(specs, config)
        try:
            if first:
                await worker.run(socket_connector(server), task_status=task_status)
            else:
                await worker.run(socket_connector(server))
        except VoiceBotError as exc:
            if server.stopping:
                return
            log.warning("local worker: %s; reconnecting", exc)
        first = first and not worker.registered.is_set()
        await trio.sleep(reconnect_delay)
