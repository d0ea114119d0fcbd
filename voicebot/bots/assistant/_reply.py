"""One bot reply: LLM stream → sentences → TTS → playout, three tasks in one nursery (one cancel scope).

Sentence streaming: the writer task cuts the LLM's deltas into sentences (:class:`~._text.SentenceSplitter`) and
hands each over at once; the synthesiser task turns sentence after sentence into 20 ms 48 kHz frames (PyAV
resampler) while the player task is already playing the first (:class:`~._playout.Playout`). Queues between the
stages are bounded: 16 sentences, and :data:`FRAME_BUFFER` frames (30 s of audio, ~1.8 MiB) — when full the
synthesiser waits (playback paces it). The caller runs :meth:`Reply.run` inside its cancel scope; barge-in cancels
that scope and the :class:`~._playout.Speech` then says what was actually heard.

Per-turn metrics (also logged with the turn id as correlation id): ``llm_first_token`` (request → first token),
``tts_first_audio`` (request → first audio of the first sentence), ``voice_to_voice`` (end of speech → first bot
audio frame sent to the peers), each kept per provider in the bot's analytics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ...media import FrameConverter
from ...providers import ChatMessage
from ._memory import AssistantAnalytics
from ._playout import Pcm, Playout, Speech, frames_from_chunks
from ._text import SentenceSplitter

__all__ = ["FRAME_BUFFER", "Reply"]

log = logging.getLogger("voicebot.assistant")

FRAME_BUFFER = 1500
"""Frames synthesised ahead of playback at most (30 s)."""


class Reply:
    """One reply (see the module docs). ``messages`` for the LLM, or ``text`` to say as is (greeting, apology)."""

    def __init__(self, *, providers: Any, playout: Playout, analytics: AssistantAnalytics, turn_id: str,
                 messages: Sequence[ChatMessage] | None = None, text: str | None = None, voice: str | None = None,
                 language: str | None = None, end_of_speech: float | None = None, apology: bool = False,
                 on_sentence: Callable[[str], None] | None = None,
                 on_first_audio: Callable[[], None] | None = None) -> None:
        self.providers = providers
        self.playout = playout
        self.analytics = analytics
        self.turn_id = turn_id
        self.messages = messages
        self.text = text
        self.voice = voice
        self.language = language
        self.end_of_speech = end_of_speech
        self.apology = apology
        self.on_sentence = on_sentence
        self.on_first_audio = on_first_audio
        self.speech = Speech()
        """What is being said and how much was sent (see :class:`~._playout.Speech`)."""
        self.timings: dict[str, float] = {}
        """Stage latencies of this reply (seconds)."""
        self.providers_used: dict[str, str] = {}
        """Which provider answered each stage."""
        self.fallbacks = 0
        """Providers skipped or failed before the ones that answered (LLM + TTS)."""
        self.gate: trio.Event | None = None
        """When set: playback waits for this event (a speculative reply prepared during the endpointing silence
        writes and synthesises ahead, and only plays once the turn really ended)."""

    async def run(self) -> None:
        """Write, synthesise and play the whole reply; returns once the last frame was handed to aiortc."""
        sentences_send, sentences_recv = trio.open_memory_channel[str](16)
        frames_send, frames_recv = trio.open_memory_channel[tuple[int, Pcm]](FRAME_BUFFER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write, sentences_send)
            nursery.start_soon(self._synthesize, sentences_recv, frames_send)
            await self._play(frames_recv)

    async def _write(self, out: trio.MemorySendChannel[str]) -> None:
        async with out:
            splitter = SentenceSplitter()
            if self.text is not None:
                for sentence in [*splitter.feed(self.text + "\n"), splitter.flush()]:
                    if sentence:
                        await out.send(sentence)
                return
            assert self.messages is not None
            async with self.providers.stream(self.messages) as reply:
                self._stage("llm_first_token", float(reply.first_latency), str(reply.provider))
                self.fallbacks += int(reply.fallbacks)
                async for delta in reply:
                    for sentence in splitter.feed(delta):
                        await out.send(sentence)
            rest = splitter.flush()
            if rest:
                await out.send(rest)

    async def _synthesize(self, sentences: trio.MemoryReceiveChannel[str],
                          out: trio.MemorySendChannel[tuple[int, Pcm]]) -> None:
        async with out:
            async for sentence in sentences:
                index = self.speech.add(sentence)
                record = self.speech.sentences[index]
                converter = FrameConverter()
                opened = (self.providers.apology(sentence) if self.apology else
                          self.providers.synthesize(sentence, voice=self.voice, language=self.language))
                async with opened as audio:
                    if index == 0:
                        self._stage("tts_first_audio", float(audio.first_latency), str(audio.provider))
                    self.fallbacks += int(audio.fallbacks)
                    rate = int(audio.sample_rate)
                    async for chunk in audio:
                        for frame in frames_from_chunks(converter, chunk, rate):
                            record.frames += 1
                            await out.send((index, frame))
                for frame in frames_from_chunks(converter, None, rate):
                    record.frames += 1
                    await out.send((index, frame))
                record.complete = True

    async def _play(self, frames: trio.MemoryReceiveChannel[tuple[int, Pcm]]) -> None:
        started = -1
        async for index, frame in frames:
            if self.gate is not None:
                await self.gate.wait()
            if index != started:
                started = index
                if self.on_sentence is not None:
                    self.on_sentence(" ".join(s.text for s in self.speech.sentences[: index + 1]))
            await self.playout.send(frame, self.speech, index, self._first_audio)
        await self.playout.drain()

    def _first_audio(self, at: float) -> None:
        if self.end_of_speech is not None:
            self._stage("voice_to_voice", max(0.0, at - self.end_of_speech), self.providers_used.get("llm_first_token"))
        if self.on_first_audio is not None:
            self.on_first_audio()

    def _stage(self, stage: str, seconds: float, provider: str | None) -> None:
        if self.apology or (self.text is not None and stage != "tts_first_audio"):
            return  # greetings and apologies are not conversational turns
        self.timings[stage] = seconds
        if provider is not None:
            self.providers_used[stage] = provider
        if self.text is None:
            self.analytics.observe(stage, seconds, provider)
