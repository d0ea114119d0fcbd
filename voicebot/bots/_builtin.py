"""Built-in bots: ``echo`` (each member hears their own audio back) and ``speaker`` (says a text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import av
import numpy as np
import trio

from ..errors import ValidationError
from ..media import FRAME_SAMPLES, SAMPLE_RATE, FrameConverter, MediaConfig
from ._peers import MediaBot, PeerLink
from ._session import BotSession
from ._speech import frames_of, synthesize_off_loop

__all__ = ["EchoBot", "SpeakerBot"]


def _fast_mono(frame: av.AudioFrame) -> np.ndarray[Any, np.dtype[np.int16]] | None:
    """aiortc's usual frame (s16 packed stereo, 48 kHz, 960 samples) → mono s16 without a resampler."""
    if frame.format.name != "s16" or frame.sample_rate != SAMPLE_RATE or frame.samples != FRAME_SAMPLES:
        return None
    data = frame.to_ndarray().reshape(FRAME_SAMPLES, -1)
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return np.asarray((data[:, 0].astype(np.int32) + data[:, 1]) // 2, dtype=np.int16)


class EchoBot(MediaBot):
    """Returns each member's own audio to that member (microphone and latency tests). No options."""

    async def on_peer(self, link: PeerLink) -> None:
        """Copy the member's incoming frames to their outgoing track (never waits: newest audio wins)."""
        track = await link.audio_in()
        converter: FrameConverter | None = None
        async for frame in track.frames:
            pcm = _fast_mono(frame)
            if pcm is not None:
                link.audio_out.send_nowait(pcm)
                continue
            converter = converter or FrameConverter()
            for out in converter.convert(frame):
                link.audio_out.send_nowait(out)


class SpeakerBot(MediaBot):
    """Says ``text`` to every member once connected; with ``repeat`` (seconds) says it again after each pause."""

    def __init__(self, text: str, repeat: float | None = None, media: MediaConfig | None = None) -> None:
        super().__init__(media)
        self.text = text
        self.repeat = repeat
        self._frames: list[np.ndarray[Any, np.dtype[np.int16]]] | None = None

    async def prepare(self) -> None:
        """Synthesise the utterance off the event loop (budgeted per process; see ``synthesize_off_loop``).
        The worker calls it before the bot joins (a ``tts_busy`` failure is then reported, not crashed on)."""
        if self._frames is None:
            self._frames = frames_of(await synthesize_off_loop(self.text))

    async def run(self, session: BotSession) -> None:
        """Make sure the utterance is ready, then serve peers; the audio is dropped when the bot ends."""
        await self.prepare()
        try:
            await super().run(session)
        finally:
            # Megabytes of frames: freed now, not when the collector's rare full pass finds the bot's reference
            # cycles (a flood of short-lived speaker bots grew the process by ~2.6 MB per bot).
            self._frames = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], media: MediaConfig | None = None) -> SpeakerBot:
        """Validate ``{text, repeat?}``."""
        text = options.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > 1000:
            raise ValidationError("text: 1-1000 characters required", code="invalid_options", field="text")
        repeat = options.get("repeat")
        if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int | float)
                                   or not 0.5 <= repeat <= 3600):
            raise ValidationError("repeat: seconds between 0.5 and 3600", code="invalid_options", field="repeat")
        return cls(text, None if repeat is None else float(repeat), media)

    async def on_peer(self, link: PeerLink) -> None:
        """Play the utterance (paced by the track's queue), then pause or stop."""
        await self.prepare()
        assert self._frames is not None
        while True:
            for pcm in self._frames:
                await link.audio_out.send(pcm)
            if self.repeat is None:
                return
            await trio.sleep(self.repeat)
