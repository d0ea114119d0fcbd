"""``bot.add {bot: "assistant", persona?, greeting?, voice?, language?}`` options and the worker-wide settings.

Validation errors are ``ValidationError`` ``invalid_options`` naming the ``field`` (the worker reports them to the
requester as ``bot.add``'s failure).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from ...errors import ValidationError
from ...providers import ProviderConfig

__all__ = ["DEFAULT_GREETING", "MAX_GREETING_CHARS", "MAX_PERSONA_CHARS", "AssistantConfig", "AssistantOptions"]

MAX_PERSONA_CHARS = 4000
"""Longest ``persona`` (system prompt)."""
MAX_GREETING_CHARS = 500
"""Longest ``greeting``."""
DEFAULT_GREETING = "Hello! I'm Vee, your voice assistant. How can I help?"
"""Said when the bot joins unless ``greeting`` is given (``""``: say nothing)."""
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_VOICE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")


def _text(options: Mapping[str, Any], field: str, limit: int) -> str | None:
    value = options.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError(f"{field}: a string of at most {limit} characters", code="invalid_options", field=field)
    return value


@attrs.frozen
class AssistantOptions:
    """One assistant's options (from ``bot.add``)."""

    persona: str | None = None
    """System prompt (None: the default persona)."""
    greeting: str = DEFAULT_GREETING
    """Said on joining (``""``: nothing)."""
    voice: str | None = None
    """TTS voice name handed to the TTS provider (None: the provider's default)."""
    language: str = "en"
    """Language code for STT and TTS (``en``, ``en-US``…)."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AssistantOptions:
        """Validate ``bot.add``'s per-bot options (unknown ones are refused, so a typo is not silently ignored)."""
        unknown = sorted(set(options) - {"persona", "greeting", "voice", "language"})
        if unknown:
            raise ValidationError(f"{unknown[0]}: not an option of the assistant (persona, greeting, voice, "
                                  "language)", code="invalid_options", field=unknown[0])
        persona = _text(options, "persona", MAX_PERSONA_CHARS)
        greeting = _text(options, "greeting", MAX_GREETING_CHARS)
        voice = _text(options, "voice", 64)
        if voice is not None and not _VOICE.match(voice):
            raise ValidationError("voice: 1-64 letters, digits or _.+-", code="invalid_options", field="voice")
        language = _text(options, "language", 16)
        if language is not None and not _LANGUAGE.match(language):
            raise ValidationError("language: a language code like 'en' or 'en-US'", code="invalid_options",
                                  field="language")
        return cls(persona=(persona or "").strip() or None, greeting=DEFAULT_GREETING if greeting is None
                   else greeting.strip(), voice=voice, language=language or "en")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 (got {value})")


@attrs.frozen(kw_only=True)
class AssistantConfig:
    """Worker-wide assistant settings (from ``voicebot serve``/``voicebot worker`` settings)."""

    vad_silence: float = attrs.field(default=0.5, validator=_positive)
    """Seconds of silence that end a user turn (``--vad-silence``)."""
    barge_in_min: float = attrs.field(default=0.25, validator=_positive)
    """Seconds of voiced audio over the bot that interrupt it (``--barge-in-min``)."""
    context_budget: int = attrs.field(default=6000, validator=_positive)
    """Characters of history sent to the language model (``--context-budget``)."""
    providers: ProviderConfig | None = None
    """The :class:`~voicebot.providers.ProviderConfig` to build each bot's providers from (None: the process's
    configuration, set by ``voicebot serve``/``voicebot worker`` through ``configure_providers``)."""

    @classmethod
    def from_settings(cls, settings: Any) -> AssistantConfig:
        """From :class:`~voicebot.server.Settings` (providers: the process's configuration)."""
        return cls(vad_silence=settings.vad_silence, barge_in_min=settings.barge_in_min,
                   context_budget=settings.context_budget)
