"""AI providers for bots: speech-to-text, language models and text-to-speech, behind chains with deadlines,
retries, per-provider circuit breakers and fallback (see :mod:`voicebot.providers._api` for the contract)."""

from ._api import STT_SAMPLE_RATE, ChatMessage, LLMProvider, ProviderKind, STTProvider, TTSProvider

__all__ = [
    "STT_SAMPLE_RATE",
    "ChatMessage",
    "LLMProvider",
    "ProviderKind",
    "STTProvider",
    "TTSProvider",
]
