"""Registration of the built-in providers (imported by the package ``__init__``).

Factories import their modules lazily, so a worker that never names ``openai`` never imports httpx, and one
without the speech extra still starts with chains that do not need it.
"""

from __future__ import annotations

from typing import Any

from ._config import ProviderConfig
from ._registry import register_provider

__all__: list[str] = []


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

    return WhisperSTT()


register_provider("llm", "responder", _responder)
register_provider("tts", "espeak", _espeak)
register_provider("tts", "piper", _piper)
register_provider("stt", "whisper", _whisper)
