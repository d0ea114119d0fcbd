"""A real hub on a TCP port (real clock) with the bot extension and an in-process worker, plus audio checks."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import numpy as np
import trio

from voicebot.bots import BotSpec, HumanPeer, builtin_bots
from voicebot.client import connect
from voicebot.media import IncomingTrack, MediaConfig, dominant_frequency, frame_to_mono
from voicebot.server import Server
from voicebot.testing import FakePasswordHasher, settings_for_tests
from voicebot.workers import BotHub, BotHubSettings, Worker, install_bot_hub, run_local_worker

LOOPBACK = MediaConfig(allow_loopback=True)


@asynccontextmanager
async def serve_with_bots(*, capacity: int = 4, bots: Mapping[str, BotSpec] | None = None
                          ) -> AsyncIterator[tuple[Server, BotHub, Worker, str]]:
    """Server on 127.0.0.1:<free port> + BotHub + local worker with the built-in bots; yields the ws URL."""
    server = Server(settings_for_tests(port=0), rng=random.Random(3), passwords=FakePasswordHasher())
    bot_hub = install_bot_hub(server, BotHubSettings(start_timeout=10.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        worker: Worker = await nursery.start(lambda task_status: run_local_worker(
            server, bot_hub, capacity=capacity, media=LOOPBACK, bots=bots, task_status=task_status))
        try:
            yield server, bot_hub, worker, f"ws://127.0.0.1:{server.port}/ws"
        finally:
            server.shutdown()


async def collect(track: IncomingTrack, *, skip: int, frames: int) -> np.ndarray:
    """Mono float samples of ``frames`` frames after skipping ``skip``."""
    chunks = []
    async for frame in track.frames:
        chunks.append(frame_to_mono(frame))
        if len(chunks) >= skip + frames:
            break
    return np.concatenate(chunks[skip:])


async def frequency_of(track: IncomingTrack, *, skip: int = 30, frames: int = 25) -> float:
    """Dominant frequency of the received audio."""
    return dominant_frequency(await collect(track, skip=skip, frames=frames), 48_000)


def rms(samples: np.ndarray) -> float:
    """Root mean square level (full scale 1.0)."""
    return float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0


__all__ = ["LOOPBACK", "builtin_bots", "collect", "frequency_of", "rms", "serve_with_bots"]


@asynccontextmanager
async def human(url: str, name: str, lobby_id: str | None, tone: float | None) -> AsyncIterator[HumanPeer]:
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(connect(url))
        await client.hello(name)
        if lobby_id is not None:
            await client.join(lobby_id)
        peer = HumanPeer(client, LOOPBACK, tone=tone)
        nursery = await stack.enter_async_context(trio.open_nursery())
        nursery.start_soon(peer.run)
        yield peer
        nursery.cancel_scope.cancel()
