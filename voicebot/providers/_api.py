"""The provider interfaces: speech-to-text, language model, text-to-speech.

A provider is one way of doing one kind of work (``openai`` over HTTP, ``local`` offline, ``llama`` on a GGUF
file…). Bots never call a provider directly: they call a :class:`ProviderChain`-backed :class:`Providers`, which
adds deadlines, retries, one circuit breaker per provider (shared by every bot in the process) and fallback to
the next provider of the chain. Providers themselves therefore stay simple: do the call, raise
:class:`~voicebot.errors.ProviderError` (``retryable`` set truthfully) or any exception the classifier maps.

Audio conventions: STT input is 16 kHz mono s16 (``numpy.int16``); TTS output is mono s16 chunks at the
provider's own :attr:`TTSProvider.sample_rate` (the bot resamples to 48 kHz for WebRTC).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:  # annotations only: numpy loads where audio is actually processed
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "STT_SAMPLE_RATE",
    "ChatMessage",
    "LLMProvider",
    "ProviderKind",
    "STTProvider",
    "TTSProvider",
]

ProviderKind = Literal["stt", "llm", "tts"]
"""The three kinds of provider (also the ``kind`` label of ``voicebot_provider_requests_total``)."""

STT_SAMPLE_RATE = 16_000
"""Sample rate of the audio handed to :meth:`STTProvider.transcribe`."""


@attrs.frozen
class ChatMessage:
    """One message of an LLM conversation (OpenAI chat shape).

    ``name`` carries the speaker of a ``user`` message (several people talk to one bot), so the model can
    address them; providers that cannot pass names put them into the text (``"alice: hi"``).
    """

    role: Literal["system", "user", "assistant"]
    content: str
    name: str | None = None


@runtime_checkable
class STTProvider(Protocol):
    """Speech to text."""

    name: str
    """Provider name as used in chains (``--stt openai,local``) and metrics."""

    async def transcribe(self, pcm: npt.NDArray[np.int16], *, language: str) -> str:
        """The text said in ``pcm`` (16 kHz mono s16; one user utterance). ``""`` when nothing was said.
        CPU-heavy work runs off the event loop (``trio.to_thread``)."""
        ...


@runtime_checkable
class LLMProvider(Protocol):
    """A language model answering a conversation, streamed."""

    name: str

    def stream(self, messages: Sequence[ChatMessage]) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """``async with llm.stream(messages) as deltas: async for text in deltas: …`` — the reply as it is
        written, in text pieces of any size. Leaving the ``async with`` early (barge-in, deadline) releases
        the request (closes the HTTP stream, stops local generation)."""
        ...


@runtime_checkable
class TTSProvider(Protocol):
    """Text to speech, streamed."""

    name: str
    sample_rate: int
    """Sample rate of the chunks :meth:`synthesize` yields (e.g. 22,050 for piper, 24,000 for OpenAI)."""

    def synthesize(self, text: str, *, voice: str | None = None,
                   language: str | None = None) -> AbstractAsyncContextManager[AsyncIterator[npt.NDArray[np.int16]]]:
        """``async with tts.synthesize(text) as chunks: async for pcm in chunks: …`` — mono s16 audio of
        ``text`` as it is produced (the first chunk as early as possible). CPU-heavy work runs off the event
        loop. Leaving early stops synthesis / closes the download."""
        ...
