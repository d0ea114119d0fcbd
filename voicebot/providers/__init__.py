"""AI providers for bots: speech-to-text, language models and text-to-speech, behind chains with deadlines,
retries, per-provider circuit breakers and fallback.

Public API (stable; the assistant bot is built on it):

- :class:`Providers` — the facade: ``Providers(ProviderConfig.from_settings(settings))`` (or
  :meth:`Providers.from_chains` with instances), then ``await transcribe(pcm) -> Transcript``,
  ``async with stream(messages) as reply`` (text deltas), ``async with synthesize(text) as audio`` (s16 chunks at
  ``audio.sample_rate``), ``async with apology() as audio`` (the local TTS saying :data:`APOLOGY`), ``stats()``,
  ``aclose()``. Every streamed answer is a :class:`Reply` (``provider``, ``fallbacks``, ``first_latency``,
  ``error`` when it broke mid-stream, ``sample_rate``). A whole chain failing raises
  :class:`~voicebot.errors.ProviderError` with code ``provider_failed``.
- :class:`Conversation` — persona, attributed turns, context budget, ``to_dict``/``from_dict``.
- :class:`ProviderConfig`, :func:`add_provider_arguments` — configuration from settings / flags;
  :func:`configure_providers` (validated at start-up by ``serve`` and ``worker``) and :func:`current_config` —
  the process's configuration, which bots pass to ``Providers(current_config())``.
- :func:`register_provider` (or the entry-point group ``voicebot.providers``) — add a provider.
- The interfaces :class:`STTProvider`, :class:`LLMProvider`, :class:`TTSProvider` and :class:`ChatMessage`.
- Built-in providers: ``whisper`` (STT), ``responder`` (LLM), ``piper`` and ``espeak`` (TTS), ``openai`` (all
  three kinds), ``llama`` (LLM, optional extra). ``local`` = whisper / responder / piper,espeak.

Semantics of chains (deadlines, retries, breakers, fallback only before the first piece, mid-stream failure):
see :mod:`voicebot.providers._chain` and README "AI providers".
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from . import _builtin  # noqa: F401 - registers the built-in providers

if TYPE_CHECKING:
    from ._api import STT_SAMPLE_RATE, ChatMessage, LLMProvider, ProviderKind, STTProvider, TTSProvider
    from ._audio import resample_mono
    from ._brain import Responder, persona_name
    from ._chain import ProviderChain, Reply
    from ._config import API_KEY_ENV, PROVIDER_SETTINGS, ProviderConfig, add_provider_arguments, parse_chain
    from ._conversation import DEFAULT_PERSONA, MAX_PERSONA_CHARS, Conversation, Turn
    from ._facade import APOLOGY, PROVIDER_BREAKERS, Providers, Transcript
    from ._registry import (
        ENTRY_POINT_GROUP,
        LOCAL_CHAINS,
        ProviderUnavailable,
        UnknownProvider,
        expand_chain,
        register_provider,
        registered_providers,
        unregister_provider,
    )
    from ._setup import configure_providers, current_config
    from ._stats import PROVIDER_STATS, ProviderStats

__all__ = [
    "API_KEY_ENV",
    "APOLOGY",
    "DEFAULT_PERSONA",
    "ENTRY_POINT_GROUP",
    "LOCAL_CHAINS",
    "MAX_PERSONA_CHARS",
    "PROVIDER_BREAKERS",
    "PROVIDER_SETTINGS",
    "PROVIDER_STATS",
    "STT_SAMPLE_RATE",
    "ChatMessage",
    "Conversation",
    "LLMProvider",
    "ProviderChain",
    "ProviderConfig",
    "ProviderKind",
    "ProviderStats",
    "ProviderUnavailable",
    "Providers",
    "Reply",
    "Responder",
    "STTProvider",
    "TTSProvider",
    "Transcript",
    "Turn",
    "UnknownProvider",
    "add_provider_arguments",
    "configure_providers",
    "current_config",
    "expand_chain",
    "parse_chain",
    "persona_name",
    "register_provider",
    "registered_providers",
    "resample_mono",
    "unregister_provider",
]

__getattr__ = lazy_exports(__name__, {
    "STT_SAMPLE_RATE": "._api",
    "ChatMessage": "._api",
    "LLMProvider": "._api",
    "ProviderKind": "._api",
    "STTProvider": "._api",
    "TTSProvider": "._api",
    "resample_mono": "._audio",
    "Responder": "._brain",
    "persona_name": "._brain",
    "ProviderChain": "._chain",
    "Reply": "._chain",
    "API_KEY_ENV": "._config",
    "PROVIDER_SETTINGS": "._config",
    "ProviderConfig": "._config",
    "add_provider_arguments": "._config",
    "parse_chain": "._config",
    "DEFAULT_PERSONA": "._conversation",
    "MAX_PERSONA_CHARS": "._conversation",
    "Conversation": "._conversation",
    "Turn": "._conversation",
    "APOLOGY": "._facade",
    "PROVIDER_BREAKERS": "._facade",
    "Providers": "._facade",
    "Transcript": "._facade",
    "ENTRY_POINT_GROUP": "._registry",
    "LOCAL_CHAINS": "._registry",
    "ProviderUnavailable": "._registry",
    "UnknownProvider": "._registry",
    "expand_chain": "._registry",
    "register_provider": "._registry",
    "registered_providers": "._registry",
    "unregister_provider": "._registry",
    "configure_providers": "._setup",
    "current_config": "._setup",
    "PROVIDER_STATS": "._stats",
    "ProviderStats": "._stats",
})
