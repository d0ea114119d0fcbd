"""Listening to one person: their track → 16 kHz mono → VAD (in a thread) → endpointing → speculative STT.

One :class:`Listener` per peer connection (a rebuilt connection gets a new one). Speech-to-text starts the moment
silence begins (``silence_started``) in its own cancel scope, and is cancelled — its result discarded — if the
person speaks again before ``vad_silence`` passed (``speech_resumed``); when the turn ends the result is usually
ready already, so the STT time hides behind the endpointing silence. The finished :class:`Utterance` (even an
empty one: the floor needs to know the turn ended) goes to the bot; every voiced chunk is reported to the bot for
barge-in. Frames are never awaited on the asyncio side: if VAD falls behind, the track's bounded channel drops the
oldest frame (counted in the track's stats).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio

from ...errors import classify
from .._peers import PeerLink
from ._endpoint import CHUNK_SAMPLES, Downsampler, Endpointer, EndpointEvent, Pcm16, SileroVad

if TYPE_CHECKING:
    from ._assistant import AssistantBot

__all__ = ["Listener", "Utterance"]

log = logging.getLogger("voicebot.assistant")


@attrs.frozen
class Utterance:
    """One finished user turn of one person."""

    peer_id: str
    name: str
    text: str
    """What they said (``""``: nothing intelligible)."""
    end_of_speech: float
    """Trio time of the last voiced chunk."""
    stt_seconds: float
    """End of speech → STT final (the transcription may finish during the endpointing silence: then it is
    shorter than ``vad_silence``)."""
    provider: str
    fallbacks: int
    turn_id: str
    key: int = 0
    """Identifies the transcription (matches a speculative reply prepared from it, see the bot's floor)."""


_KEYS = itertools.count(1)


@attrs.define(eq=False)
class _Transcription:
    key: int = attrs.field(factory=lambda: next(_KEYS))
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: Exception | None = None
    finished_at: float = 0.0
    event: EndpointEvent | None = None
    """The ``silence_started`` event of a speculative transcription (None once the turn ended)."""


class Listener:
    """Hears one person for ``bot`` (see the module docs)."""

    def __init__(self, bot: AssistantBot, link: PeerLink) -> None:
        self.bot = bot
        self.link = link
        self.endpointer = Endpointer(vad_silence=bot.config.vad_silence)
        self.speculative_discarded = 0
        """Speculative transcriptions thrown away because the person went on speaking."""
        self._pending: _Transcription | None = None

    async def run(self) -> None:
        """Listen until the track ends (then return) or the connection's scope is cancelled."""
        track = await self.link.audio_in()
        down = Downsampler()
        vad = SileroVad()
        buffered = np.zeros(0, dtype=np.int16)
        async with trio.open_nursery() as nursery:
            async for frame in track.frames:
                buffered = np.concatenate([buffered, down.convert(frame)])
                usable = len(buffered) // CHUNK_SAMPLES * CHUNK_SAMPLES
                if usable == 0:
                    continue
                chunk, buffered = buffered[:usable], buffered[usable:]
                probabilities = await trio.to_thread.run_sync(vad.probabilities, chunk)
                now = trio.current_time()
                for i, probability in enumerate(probabilities):
                    piece = chunk[i * CHUNK_SAMPLES:(i + 1) * CHUNK_SAMPLES]
                    for event in self.endpointer.step(probability, piece, now):
                        self._on_event(nursery, event)
            nursery.cancel_scope.cancel()

    def _on_event(self, nursery: trio.Nursery, event: EndpointEvent) -> None:
        if event.kind == "voiced":
            self.bot.heard_voice(self.link.peer_id, event.voiced, event.at)
        elif event.kind == "silence_started":
            assert event.pcm is not None
            self._pending = self._start(nursery, event.pcm)
            self._pending.event = event
        elif event.kind == "speech_resumed":
            if self._pending is not None:
                self._pending.scope.cancel()
                self.bot.withdraw(self._pending.key)
                self._pending = None
                self.speculative_discarded += 1
        elif event.kind == "turn_ended":
            assert event.pcm is not None
            pending = self._pending if self._pending is not None else self._start(nursery, event.pcm)
            pending.event = None  # the turn is over: a result arriving now is submitted, not previewed
            self._pending = None
            nursery.start_soon(self._finish, pending, event)

    def _start(self, nursery: trio.Nursery, pcm: Pcm16) -> _Transcription:
        job = _Transcription()
        nursery.start_soon(self._transcribe, job, pcm)
        return job

    async def _transcribe(self, job: _Transcription, pcm: Pcm16) -> None:
        with job.scope:
            try:
                job.result = await self.bot.providers.transcribe(pcm, language=self.bot.options.language)
            except Exception as exc:  # a whole STT chain failed: the floor apologises (reported, counted)
                job.error = exc
            job.finished_at = trio.current_time()
            job.done.set()
            if job.event is not None and job.error is None and str(job.result.text).strip():
                self.bot.preview(self._utterance(job, job.event))

    def _utterance(self, job: _Transcription, event: EndpointEvent) -> Utterance:
        result = job.result
        return Utterance(
            peer_id=self.link.peer_id, name=self.link.name, text=str(result.text).strip(),
            end_of_speech=event.at, stt_seconds=max(0.0, job.finished_at - event.at),
            provider=str(result.provider), fallbacks=int(result.fallbacks), turn_id=self.bot.new_turn_id("u"),
            key=job.key)

    async def _finish(self, job: _Transcription, event: EndpointEvent) -> None:
        await job.done.wait()
        if job.error is not None:
            log.warning("assistant %s: speech-to-text failed for %s: %s", self.bot.peer_id, self.link.peer_id,
                        classify(job.error).error)
            self.bot.stt_failed(self.link.peer_id, job.error)
            return
        self.bot.submit(self._utterance(job, event))
