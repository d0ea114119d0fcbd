"""Helpers for media tests: loopback peers, tone feeding and FFT checks (imported by the test modules)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import numpy as np

from voicebot.errors import WebRTCError
from voicebot.media import (
    AudioSender,
    IncomingTrack,
    MediaConfig,
    MediaRuntime,
    PeerConnection,
    dominant_frequency,
    frame_to_mono,
    tone_frames,
)

LOOPBACK = MediaConfig(allow_loopback=True)
"""Works on any host: interface addresses plus 127.0.0.1."""
LOOPBACK_ONLY = MediaConfig(host_addresses=("127.0.0.1",))
"""Simulates a loopback-only host (CI namespace) even on a machine with a real interface."""


@asynccontextmanager
async def connected_pair(
    runtime: MediaRuntime, config: MediaConfig = LOOPBACK, *, audio: bool = True
) -> AsyncIterator[tuple[PeerConnection, PeerConnection, list[AudioSender]]]:
    """Two peer connections negotiated in-process (offer/answer handed over directly) and connected."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(PeerConnection(config, runtime=runtime))
        b = await stack.enter_async_context(PeerConnection(config, runtime=runtime))
        senders = [await a.add_audio_sender(), await b.add_audio_sender()] if audio else []
        await negotiate(a, b)
        yield a, b, senders


async def negotiate(a: PeerConnection, b: PeerConnection) -> float:
    """Offer from ``a``, answer from ``b``, wait until both are connected; returns the seconds taken."""
    start = time.monotonic()
    answer = await b.create_answer(await a.create_offer())
    await a.set_remote_description(answer)
    await a.wait_connected()
    await b.wait_connected()
    return time.monotonic() - start


async def feed_tone(sender: AudioSender, frequency: float) -> None:
    """Keep ``sender`` supplied with a tone in real time (``send`` waits while the queue is full); returns
    when the track is closed."""
    try:
        for pcm in tone_frames(frequency):
            await sender.send(pcm)
    except WebRTCError as exc:
        if exc.code != "track_closed":
            raise


async def received_frequency(track: IncomingTrack, *, skip: int = 15, frames: int = 25) -> float:
    """Dominant frequency of ``frames`` received frames after skipping ``skip`` (jitter buffer, Opus warm-up)."""
    chunks = []
    async for frame in track.frames:
        chunks.append(frame_to_mono(frame))
        if len(chunks) >= skip + frames:
            break
    return dominant_frequency(np.concatenate(chunks[skip:]), 48_000)
