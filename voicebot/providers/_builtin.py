"""Registration of the built-in providers (imported by the package ``__init__``).

Factories import their modules lazily, so a worker that never names ``openai`` never imports httpx, and one
without the speech extra still starts with chains that do not need it. Each registers a check
(:mod:`voicebot.providers._checks`) so start-up validation imports no engine.
"""

from __future__ import annotations

from typing import Any

from ._checks import check_espeak, check_llama, check_piper, check_whisper
from ._config import ProviderConfig
from ._registry import register_provider

__all__: list[str] = []


def _always(config: ProviderConfig) -> None:
    """``responder`` and ``openai`` need only core dependencies: they can always be built."""


def _responder(config: ProviderConfig) -> Any:
    from ._brain import Responder  # noqa: PLC0415

    return Responder()


def _espeak(config: ProviderConfig) -> Any:
    from ._local_tts import EspeakTTS  # noqa: PLC0415

    return EspeakTTS()


def _piper(config: ProviderConfig) -> Any:
    from ._local_tts import PiperTTS  # noqa: PLC0415

    return PiperTTS()


def _whisper(config: ProviderConfig) -> Any:
    from ._whisper import WhisperSTT  # noqa: PLC0415

    return WhisperSTT(window=config.whisper_window)


def _llama(config: ProviderConfig) -> Any:
    from ._llama import LlamaLLM  # noqa: PLC0415

    return LlamaLLM(config)


def _openai(kind: str) -> Any:
    def factory(config: ProviderConfig) -> Any:
        from . import _openai as openai  # noqa: PLC0415

        classes = {"stt": openai.OpenAISTT, "llm": openai.OpenAILLM, "tts": openai.OpenAITTS}
        return classes[kind](config)

    return factory


register_provider("llm", "responder", _responder, check=_always)
register_provider("llm", "llama", _llama, check=check_llama)
register_provider("stt", "openai", _openai("stt"), check=_always)
register_provider("llm", "openai", _openai("llm"), check=_always)
register_provider("tts", "openai", _openai("tts"), check=_always)
register_provider("tts", "espeak", _espeak, check=check_espeak)
register_provider("tts", "piper", _piper, check=check_piper)
register_provider("stt", "whisper", _whisper, check=check_whisper)
