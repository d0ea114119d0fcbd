"""Fake bots (no media) and fixtures for hub/worker tests on the autojump clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from voicebot.bots import BotSession, BotSpec
from voicebot.errors import ValidationError
from voicebot.server import Server
from voicebot.workers import BotHub, Worker, WorkerConfig, memory_connector


class IdleBot:
    """Joins and stays until cancelled."""

    async def run(self, session: BotSession) -> None:
        await trio.sleep_forever()


class CrashOnceBot:
    """Crashes ``crashes`` times (shared counter) shortly after joining, then stays."""

    crashes_left = 0
    runs = 0

    async def run(self, session: BotSession) -> None:
        CrashOnceBot.runs += 1
        await trio.sleep(1.0)
        if CrashOnceBot.crashes_left > 0:
            CrashOnceBot.crashes_left -= 1
            raise RuntimeError("bot bug")
        await trio.sleep_forever()


def _picky(options: Mapping[str, Any]) -> IdleBot:
    if "text" not in options:
        raise ValidationError("text: required", code="invalid_options", field="text")
    return IdleBot()


FAKE_BOTS = {
    "idle": BotSpec("idle", "does nothing", lambda _o: IdleBot(), needs_media=False),
    "crashy": BotSpec("crashy", "crashes", lambda _o: CrashOnceBot(), needs_media=False),
    "picky": BotSpec("picky", "needs text", _picky, needs_media=False),
}


@asynccontextmanager
async def running_worker(server: Server, bot_hub: BotHub, *, capacity: int = 3, name: str = "w",
                         bots: Mapping[str, BotSpec] = FAKE_BOTS) -> AsyncIterator[tuple[Worker, trio.CancelScope]]:
    """A worker connected through memory streams; cancel the yielded scope to kill it (like a crash)."""
    worker = Worker(bots, WorkerConfig(token=bot_hub.local_token, capacity=capacity, name=name))
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await worker.run(memory_connector(server), task_status=task_status)

        await nursery.start(run)
        yield worker, scope
        nursery.cancel_scope.cancel()
