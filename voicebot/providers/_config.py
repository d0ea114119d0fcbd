"""Provider configuration: which chains to run, where the HTTP APIs live, deadlines and budgets.

:class:`ProviderConfig` is built from the server/worker :class:`~voicebot.server.Settings` (one table of
defaults, ``VOICEBOT_*`` environment and flags) by :meth:`ProviderConfig.from_settings`; ``voicebot worker``
gets the same options as flags through :func:`add_provider_arguments`. The OpenAI key is never a setting: it
is read from the environment variable ``VOICEBOT_OPENAI_API_KEY`` only, and kept out of ``repr``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._api import ProviderKind

if TYPE_CHECKING:
    from voicebot.server import Settings

__all__ = [
    "API_KEY_ENV",
    "PROVIDER_SETTINGS",
    "ProviderConfig",
    "add_provider_arguments",
    "parse_chain",
]

API_KEY_ENV = "VOICEBOT_OPENAI_API_KEY"
"""The only place the OpenAI-compatible API key comes from."""

PROVIDER_SETTINGS = (
    "stt", "llm", "tts", "openai_base_url", "stt_base_url", "llm_base_url", "tts_base_url", "stt_model",
    "llm_model", "tts_model", "tts_voice", "llm_model_path", "stt_timeout", "llm_timeout", "tts_timeout",
    "provider_recovery_timeout", "context_budget", "whisper_window",
)
"""The settings (fields of ``Settings``) that configure providers; ``voicebot worker`` accepts them as flags."""


def parse_chain(setting: str, value: str) -> tuple[str, ...]:
    """``"openai, local"`` → ``("openai", "local")``; empty, blank or duplicate names are a ``ValueError``
    naming the ``setting``."""
    names = tuple(part.strip().lower() for part in value.split(","))
    if not value.strip() or any(not name for name in names):
        raise ValueError(f"--{setting.replace('_', '-')}: {value!r} is not a comma-separated list of providers")
    if len(set(names)) != len(names):
        raise ValueError(f"--{setting.replace('_', '-')}: {value!r} names a provider twice")
    return names


def _chain(setting: str) -> Any:
    def convert(value: str | tuple[str, ...]) -> tuple[str, ...]:
        return parse_chain(setting, value) if isinstance(value, str) else tuple(value)
    return attrs.field(default=("local",), converter=convert)


@attrs.frozen(kw_only=True)
class ProviderConfig:
    """Everything the providers of one worker process need (see README "AI providers")."""

    stt: tuple[str, ...] = _chain("stt")
    """Speech-to-text chain, primary first."""
    llm: tuple[str, ...] = _chain("llm")
    """Language-model chain, primary first."""
    tts: tuple[str, ...] = _chain("tts")
    """Text-to-speech chain, primary first."""
    openai_base_url: str = "https://api.openai.com/v1"
    stt_base_url: str = ""
    llm_base_url: str = ""
    tts_base_url: str = ""
    stt_model: str = "whisper-1"
    llm_model: str = "gpt-4o-mini"
    tts_model: str = "tts-1"
    tts_voice: str = "alloy"
    llm_model_path: str = ""
    stt_timeout: float = 5.0
    """Seconds one STT call may take per provider, retries included."""
    llm_timeout: float = 4.0
    """Seconds to the first token per LLM provider, retries included (twice that: the longest gap between tokens)."""
    tts_timeout: float = 3.0
    """Seconds to the first audio per TTS provider, retries included (twice that: the longest gap between chunks)."""
    provider_recovery_timeout: float = 30.0
    """Seconds an opened provider breaker waits before its half-open probe."""
    context_budget: int = 6000
    """Characters of conversation history (persona excluded) sent to the LLM."""
    whisper_window: float = 20.0
    """Seconds of audio context the local whisper encodes (10–30; see :class:`~voicebot.providers.WhisperSTT`)."""
    api_key: str = attrs.field(default="", repr=False)
    """From ``VOICEBOT_OPENAI_API_KEY`` only; never logged (excluded from ``repr``)."""
    failure_threshold: int = 3
    """Consecutive failed calls that open a provider's breaker."""
    max_attempts: int = 3
    """Attempts per provider and call (retryable failures only, all within the deadline)."""

    def chain(self, kind: ProviderKind) -> tuple[str, ...]:
        """The chain of ``kind``."""
        chains: dict[str, tuple[str, ...]] = {"stt": self.stt, "llm": self.llm, "tts": self.tts}
        return chains[kind]

    def timeout(self, kind: ProviderKind) -> float:
        """The per-provider deadline of ``kind``."""
        return {"stt": self.stt_timeout, "llm": self.llm_timeout, "tts": self.tts_timeout}[kind]

    def base_url(self, kind: ProviderKind) -> str:
        """The OpenAI-compatible base URL for ``kind`` (its own setting, else ``openai_base_url``), no trailing /."""
        own = {"stt": self.stt_base_url, "llm": self.llm_base_url, "tts": self.tts_base_url}[kind]
        return (own or self.openai_base_url).rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> ProviderConfig:
        """The provider part of ``settings``; the API key from ``environ`` (default ``os.environ``).

        Raises ``ValueError`` naming the setting when a chain is malformed.
        """
        environ = os.environ if environ is None else environ
        values = {name: getattr(settings, name) for name in PROVIDER_SETTINGS}
        return cls(**values, api_key=environ.get(API_KEY_ENV, ""))


def add_provider_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the provider settings as flags (``--stt``, ``--llm-model``…) to a command other than ``serve``.

    Defaults are None so the environment still applies; build with
    ``ProviderConfig.from_settings(settings_from(args))``.
    """
    from voicebot.server._settings import _FIELDS, _kind  # noqa: PLC0415 - avoid an import cycle at load time

    for field in _FIELDS:
        if field.name not in PROVIDER_SETTINGS:
            continue
        parser.add_argument(
            "--" + field.name.replace("_", "-"), dest=field.name, default=None, type=_kind(field),
            help=f"{field.metadata['help']} (env VOICEBOT_{field.name.upper()}; default {field.default})",
        )
