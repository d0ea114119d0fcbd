"""Helpers for assistant media tests: a hub with the assistant on a real port, humans who speak, event waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import trio

from voicebot.bots import HumanPeer, synthesize
from voicebot.media import IncomingTrack, frame_to_mono

__all__ = ["AudioLog", "Watch", "events_of", "speech", "wait_event"]


def speech(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng (48 kHz mono s16) followed by 0.1 s of silence."""
    return np.concatenate([synthesize(text), np.zeros(4800, dtype=np.int16)])


def events_of(peer: HumanPeer, kind: str) -> list[dict[str, Any]]:
    """The events of ``kind`` the human received so far (last 256 kept)."""
    return [e for e in peer.events if e.get("type") == kind]


async def wait_event(peer: HumanPeer, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 20.0
                     ) -> dict[str, Any]:
    """The first event (already received or arriving) that satisfies ``predicate``."""
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = [e for e in peer.events if predicate(e)]
        return bool(found)

    await peer.wait_for(check, timeout=timeout)
    return found[0]


class AudioLog:
    """Records the loudness of every frame received from a bot, with its arrival time (real clock)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, float]] = []

    async def run(self, track: IncomingTrack) -> None:
        """Record until the track ends."""
        async for frame in track.frames:
            samples = frame_to_mono(frame)
            self.frames.append((trio.current_time(), float(np.sqrt(np.mean(np.square(samples))))))

    def voiced_between(self, start: float, end: float, level: float = 0.01) -> int:
        """Frames louder than ``level`` received between ``start`` and ``end``."""
        return sum(1 for t, rms in self.frames if start <= t <= end and rms > level)

    def last_voiced(self, level: float = 0.01) -> float | None:
        """Arrival time of the last loud frame."""
        loud = [t for t, rms in self.frames if rms > level]
        return loud[-1] if loud else None


class Watch:
    """Waits for events a human receives *after* the watch was (re)armed."""

    def __init__(self, peer: HumanPeer) -> None:
        self.peer = peer
        self._seen: set[int] = set()
        self.arm()

    def arm(self) -> None:
        """Forget everything received so far."""
        self._seen = {id(e) for e in self.peer.events}

    async def next(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 20.0) -> dict[str, Any]:
        """The first new event satisfying ``predicate``."""
        return await wait_event(self.peer, lambda e: id(e) not in self._seen and predicate(e), timeout=timeout)

    async def answer(self, *, timeout: float = 20.0) -> dict[str, Any]:
        """The next final assistant caption, then the ``listening`` status after it."""
        caption = await self.next(lambda e: e.get("type") == "caption" and e["role"] == "assistant" and e["final"],
                                  timeout=timeout)
        await self.next(lambda e: e.get("type") == "bot.status" and e["state"] == "listening", timeout=timeout)
        return caption

    def states(self) -> list[str]:
        """``bot.status`` states received since arming."""
        return [e["state"] for e in self.peer.events if id(e) not in self._seen and e.get("type") == "bot.status"]
