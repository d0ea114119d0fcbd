"""Scripted in-memory providers for tests on the mock clock (no HTTP, no models).

Each call consumes the next step of the provider's script (then ``default``):

- ``"ok"`` — answer normally;
- ``"error"`` — fail with a retryable ``ProviderError`` before the first piece;
- ``"fatal"`` — fail with a non-retryable ``ProviderError``;
- ``"hang"`` — never produce anything (until cancelled: the chain's deadline);
- ``("slow", s)`` — wait ``s`` seconds, then answer;
- ``"midstream"`` — produce the first piece, then fail.

``calls`` records every call's input (LLM: the messages), so tests can assert what a bot sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from voicebot.errors import ProviderError
from voicebot.providers import ChatMessage

__all__ = ["ScriptedLLM", "ScriptedSTT", "ScriptedTTS", "Step"]

Step = str | tuple[str, float]


class _Scripted:
    def __init__(self, name: str, steps: Iterable[Step], default: Step) -> None:
        self.name = name
        self.steps: list[Step] = list(steps)
        self.default = default
        self.calls: list[Any] = []

    def script(self, *steps: Step) -> None:
        """Append steps for the next calls."""
        self.steps.extend(steps)

    async def _begin(self, received: Any) -> str:
        """Record the call and play the step's behaviour up to the first piece; returns the step kind."""
        self.calls.append(received)
        step = self.steps.pop(0) if self.steps else self.default
        kind, seconds = (step, 0.0) if isinstance(step, str) else step
        if kind == "error":
            await trio.lowlevel.checkpoint()
            raise ProviderError(f"{self.name}: scripted failure", code="provider_error", retryable=True)
        if kind == "fatal":
            await trio.lowlevel.checkpoint()
            raise ProviderError(f"{self.name}: scripted fatal failure", code="provider_error", retryable=False)
        if kind == "hang":
            await trio.sleep_forever()
        if kind == "slow":
            await trio.sleep(seconds)
        elif kind not in ("ok", "midstream"):
            raise ValueError(f"unknown scripted step {step!r}")
        return kind


class ScriptedLLM(_Scripted):
    """An LLM answering ``reply`` word by word (``per_piece`` seconds apart)."""

    def __init__(self, name: str = "fake", reply: str = "Hello there. How can I help?", *,
                 steps: Iterable[Step] = (), default: Step = "ok", per_piece: float = 0.0) -> None:
        """See the module docs."""
        super().__init__(name, steps, default)
        self.reply = reply
        self.per_piece = per_piece

    @asynccontextmanager
    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[AsyncIterator[str], None]:
        """Stream ``reply`` (or fail as scripted)."""
        kind = await self._begin(list(messages))
        words = self.reply.split(" ")

        async def pieces() -> AsyncIterator[str]:
            for index, word in enumerate(words):
                if index:
                    await trio.sleep(self.per_piece)
                if index == 1 and kind == "midstream":
                    raise ProviderError(f"{self.name}: scripted mid-stream failure", code="provider_error")
                yield word if index == 0 else " " + word

        yield pieces()


class ScriptedSTT(_Scripted):
    """An STT returning ``text`` for every utterance."""

    def __init__(self, name: str = "fake", text: str = "hello", *, steps: Iterable[Step] = (),
                 default: Step = "ok") -> None:
        """See the module docs (``midstream`` behaves like ``ok``: one piece)."""
        super().__init__(name, steps, default)
        self.text = text

    async def transcribe(self, pcm: npt.NDArray[np.int16], *, language: str) -> str:
        """``text`` (or fail as scripted)."""
        await self._begin(len(pcm))
        return self.text


class ScriptedTTS(_Scripted):
    """A TTS yielding ``chunks`` chunks of a quiet tone, ``chunk_seconds`` each, ``per_chunk`` seconds apart."""

    def __init__(self, name: str = "fake", *, sample_rate: int = 24_000, chunks: int = 3,
                 chunk_seconds: float = 0.1, per_chunk: float = 0.0, steps: Iterable[Step] = (),
                 default: Step = "ok") -> None:
        """See the module docs."""
        super().__init__(name, steps, default)
        self.sample_rate = sample_rate
        self.chunks = chunks
        self.chunk_samples = int(chunk_seconds * sample_rate)
        self.per_chunk = per_chunk

    @asynccontextmanager
    async def synthesize(self, text: str, *, voice: str | None = None,
                         language: str | None = None) -> AsyncGenerator[AsyncIterator[npt.NDArray[np.int16]], None]:
        """Chunks of a 440 Hz tone (or fail as scripted)."""
        kind = await self._begin(text)
        t = np.arange(self.chunk_samples) / self.sample_rate
        tone = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16)

        async def chunks() -> AsyncIterator[npt.NDArray[np.int16]]:
            for index in range(self.chunks):
                if index:
                    await trio.sleep(self.per_chunk)
                if index == 1 and kind == "midstream":
                    raise ProviderError(f"{self.name}: scripted mid-stream failure", code="provider_error")
                yield tone.copy()

        yield chunks()
