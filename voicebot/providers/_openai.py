"""The ``openai`` providers: any OpenAI-compatible HTTP API (OpenAI, Ollama, vLLM, llama.cpp server, LocalAI…).

httpx is the client: it runs on Trio (through anyio/httpcore), streams response bodies, and is well kept; no
HTTP is hand-written here. Calls:

- STT: ``POST {base}/audio/transcriptions`` — multipart, a 16 kHz mono s16 WAV plus ``model``/``language``;
- LLM: ``POST {base}/chat/completions`` with ``stream: true``, read as server-sent events (``data: {...}`` lines,
  ``data: [DONE]`` at the end); the speaker's name goes into the text (``"alice: hi"``) because the API's
  ``name`` field only accepts ``[a-zA-Z0-9_-]`` and many compatible servers ignore it;
- TTS: ``POST {base}/audio/speech`` with ``response_format: "pcm"`` (24 kHz s16le mono), yielded as it downloads.

The key (``VOICEBOT_OPENAI_API_KEY``) is sent as ``Authorization: Bearer`` and never logged: it lives in the
client's default headers only, and no error or log line here includes headers or response bodies. HTTP
failures are raised as httpx exceptions and mapped in :mod:`voicebot.errors._classify` (429/5xx/network →
retryable with ``Retry-After``, other 4xx not). Deadlines are the chain's (cancel scopes); httpx's own
timeouts are only a backstop.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from voicebot.errors import ProviderError

from ._api import STT_SAMPLE_RATE, ChatMessage, ProviderKind
from ._config import ProviderConfig

__all__ = ["OpenAILLM", "OpenAISTT", "OpenAITTS", "wav_bytes"]

OPENAI_PCM_RATE = 24_000
_BACKSTOP = httpx.Timeout(60.0, connect=10.0)


def wav_bytes(pcm: npt.NDArray[np.int16], rate: int = STT_SAMPLE_RATE) -> bytes:
    """``pcm`` (mono s16) as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()


class _OpenAIBase:
    """Shared client handling: one connection pool per provider instance, created in the Trio run that uses it."""

    name = "openai"
    kind: ProviderKind

    def __init__(self, config: ProviderConfig) -> None:
        self.base_url = config.base_url(self.kind)
        self._api_key = config.api_key
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    def client(self) -> httpx.AsyncClient:
        """The pooled client (keep-alive matters: a new TLS connection per turn would cost ~100 ms+)."""
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=_BACKSTOP)
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class OpenAISTT(_OpenAIBase):
    """Speech to text over ``/audio/transcriptions``."""

    kind: ProviderKind = "stt"

    def __init__(self, config: ProviderConfig) -> None:
        """Model from ``--stt-model``."""
        super().__init__(config)
        self.model = config.stt_model

    async def transcribe(self, pcm: npt.NDArray[np.int16], *, language: str) -> str:
        """Upload ``pcm`` as WAV; the returned ``text``."""
        data = {"model": self.model, "response_format": "json"}
        if language:
            data["language"] = language.split("-", maxsplit=1)[0]
        response = await self.client().post("/audio/transcriptions", data=data,
                                            files={"file": ("speech.wav", wav_bytes(pcm), "audio/wav")})
        response.raise_for_status()
        try:
            text = response.json()["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError("speech-to-text answered without text", code="provider_bad_response",
                                retryable=False) from exc
        return str(text)


def _wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    out = []
    for message in messages:
        content = f"{message.name}: {message.content}" if message.role == "user" and message.name else message.content
        out.append({"role": message.role, "content": content})
    return out


class OpenAILLM(_OpenAIBase):
    """Chat completions, streamed as server-sent events."""

    kind: ProviderKind = "llm"

    def __init__(self, config: ProviderConfig) -> None:
        """Model from ``--llm-model``."""
        super().__init__(config)
        self.model = config.llm_model

    @asynccontextmanager
    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[AsyncIterator[str], None]:
        """The reply's content deltas (empty deltas skipped); leaving early closes the HTTP stream."""
        body = {"model": self.model, "messages": _wire_messages(messages), "stream": True}
        async with self.client().stream("POST", "/chat/completions", json=body,
                                        headers={"Accept": "text/event-stream"}) as response:
            response.raise_for_status()
            yield _deltas(response)


async def _deltas(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, ``:`` comments, ``event:``/``id:`` fields
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise ProviderError("language model sent a malformed event", code="provider_bad_response",
                                retryable=False) from exc
        if isinstance(event, dict) and event.get("error"):
            error = event["error"]
            kind = error.get("type") if isinstance(error, dict) else None
            raise ProviderError("language model reported an error mid-stream", code="provider_stream_error",
                                context={"type": kind})
        choices = event.get("choices") if isinstance(event, dict) else None
        if not choices:
            continue
        delta = choices[0].get("delta") or {}
        content = delta.get("content")
        if content:
            yield str(content)


class OpenAITTS(_OpenAIBase):
    """``/audio/speech`` as raw PCM (24 kHz s16le mono), yielded while it downloads."""

    kind: ProviderKind = "tts"
    sample_rate = OPENAI_PCM_RATE

    def __init__(self, config: ProviderConfig) -> None:
        """Model and voice from ``--tts-model`` / ``--tts-voice``."""
        super().__init__(config)
        self.model = config.tts_model
        self.voice = config.tts_voice

    @asynccontextmanager
    async def synthesize(self, text: str, *, voice: str | None = None,
                         language: str | None = None) -> AsyncGenerator[AsyncIterator[npt.NDArray[np.int16]], None]:
        """Chunks as they arrive (an odd trailing byte waits for the next chunk)."""
        body: dict[str, Any] = {"model": self.model, "input": text, "voice": voice or self.voice,
                                "response_format": "pcm"}
        async with self.client().stream("POST", "/audio/speech", json=body) as response:
            response.raise_for_status()
            yield _pcm_chunks(response)


async def _pcm_chunks(response: httpx.Response) -> AsyncIterator[npt.NDArray[np.int16]]:
    pending = b""
    async for data in response.aiter_bytes():
        pending += data
        usable = len(pending) - len(pending) % 2
        if usable:
            yield np.frombuffer(pending[:usable], dtype="<i2").astype(np.int16)
            pending = pending[usable:]
