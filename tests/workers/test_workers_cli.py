"""``voicebot worker`` as a real process against an in-process hub on a real TCP port (real clock)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import trio

from voicebot.client import connect
from voicebot.server import Server
from voicebot.testing import FakePasswordHasher, settings_for_tests
from voicebot.workers import BotHubSettings, install_bot_hub

pytestmark = pytest.mark.slow


async def test_worker_process_registers_and_its_bots_leave_when_it_dies() -> None:
    server = Server(settings_for_tests(port=0), rng=random.Random(5), passwords=FakePasswordHasher())
    bot_hub = install_bot_hub(server, BotHubSettings(worker_token="tok-123"))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        url = f"ws://127.0.0.1:{server.port}/ws"
        env = {**os.environ, "VOICEBOT_WORKER_TOKEN": "tok-123"}

        async def worker_process(task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED) -> None:
            await trio.run_process(
                [sys.executable, "-m", "voicebot.cli", "worker", "--server", url, "--capacity", "2",
                 "--allow-loopback", "--log-level", "warning"],
                env=env, check=False, stderr=subprocess.DEVNULL, task_status=task_status)

        proc = await nursery.start(worker_process)
        with trio.fail_after(20):
            while not bot_hub.scheduler.workers:  # noqa: ASYNC110 -- the hub has no "registered" event
                await trio.sleep(0.05)
            worker = next(iter(bot_hub.scheduler.workers.values()))
            assert worker.capacity == 2 and set(worker.bots) == {"assistant", "echo", "speaker"}
            async with connect(url) as alice:
                await alice.hello("alice")
                lobby = await alice.create_lobby("cli")
                await alice.join(lobby["id"])
                names = {b["name"] for b in (await alice.request("bot.list"))["bots"]}
                assert names == {"assistant", "echo", "speaker"}
                added = await alice.request("bot.add", bot="echo", timeout=15)
                await alice.next_event("peer.joined")
                proc.kill()  # a crashed worker process
                left = await alice.next_event("peer.left", timeout=15)
                assert left == {"type": "peer.left", "lobby_id": lobby["id"], "peer_id": added["peer_id"],
                                "reason": "disconnected"}
        server.shutdown()
