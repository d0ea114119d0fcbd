"""A server with its in-process worker (on its own thread, as ``voicebot serve`` runs it), before any bot starts,
has loaded no media, speech or test stack."""

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
