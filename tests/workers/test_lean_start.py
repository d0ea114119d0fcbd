"""A server with its in-process worker on its own thread, before any bot starts, has loaded no media, speech or
test stack; with its worker in a child process (``voicebot serve``'s default) the hub's process loads none of it
even while bots run."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "av", "aiortc", "trio_asyncio", "asyncio", "httpx", "faster_whisper", "piper", "_pytest",
         "voicebot.bots._builtin", "voicebot.bots.assistant._assistant", "voicebot.media._runtime")

PROGRAM = f"""
import json, sys
import trio
from voicebot.bots import builtin_bots
from voicebot.bots.assistant import AssistantConfig
from voicebot.media import MediaConfig
from voicebot.providers import ProviderConfig, configure_providers
from voicebot.server import Server, Settings
from voicebot.workers import BotHubSettings, install_bot_hub, run_local_worker

async def main():
    configure_providers(ProviderConfig())
    server = Server(Settings(db=":memory:", port=0), listen=False)
    hub = install_bot_hub(server, BotHubSettings())
    media = MediaConfig()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        worker = await nursery.start(lambda task_status: run_local_worker(
            server, hub, media=media, bots=builtin_bots(media, AssistantConfig()), own_thread=True,
            task_status=task_status))
        assert worker.registered.is_set()
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        server.shutdown()

trio.run(main)
"""


def test_registered_worker_has_loaded_no_bot_stack() -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


PROCESS_PROGRAM = f"""
import json, sys
import trio
from voicebot.providers import ProviderConfig, configure_providers
from voicebot.server import Server, Settings
from voicebot.testing import open_client
from voicebot.workers import BotHubSettings, install_bot_hub, run_worker_process

async def main():
    configure_providers(ProviderConfig())
    settings = Settings(db=":memory:", port=0, log_level="warning", media_allow_loopback=True)
    server = Server(settings, listen=False)
    hub = install_bot_hub(server, BotHubSettings(start_timeout=30.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(lambda task_status: run_worker_process(
            server, hub, settings, capacity=2, task_status=task_status))
        async with open_client(server, "owner") as owner:
            room = await owner.create_lobby("room")
            await owner.join(room["id"])
            for bot in ("echo", "speaker"):
                await owner.request("bot.add", bot=bot, text="hello", timeout=60)
                await owner.next_event("peer.joined", timeout=30)
            await trio.sleep(1)
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules and m != "_pytest")))
        server.shutdown()
        nursery.cancel_scope.cancel()

trio.run(main)
"""


def test_hub_with_a_worker_process_loads_no_bot_stack_while_bots_run() -> None:
    proc = subprocess.run([sys.executable, "-c", PROCESS_PROGRAM], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
