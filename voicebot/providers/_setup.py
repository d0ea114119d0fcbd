"""This process's provider configuration: checked at start-up (:func:`configure_providers`), read by bots
(:func:`current_config`).

Kept apart from the provider chains (:mod:`voicebot.providers._facade`), so a hub that runs no bot
(``serve --local-worker 0``) checks its provider names without loading the chains.
"""

from __future__ import annotations

import logging

from ._config import ProviderConfig
from ._registry import ProviderUnavailable, check_provider, expand_chain, provider_known

__all__ = ["configure_providers", "current_config"]

log = logging.getLogger("voicebot.providers")

_process_config: list[ProviderConfig] = []


def configure_providers(config: ProviderConfig, *, instantiate: bool = True) -> None:
    """Check ``config`` (every chain name known, every named provider able to run here) and make it this
    process's default (:func:`current_config`). ``voicebot serve`` and ``voicebot worker`` call it at start-up so
    a typo or a missing package stops the command with a message naming the setting (``ValueError``).

    Each named provider is checked with :func:`~voicebot.providers._registry.check_provider`: the built-ins look
    for their packages and model files without importing their engines (numpy, speech, HTTP clients), which load
    when a bot first uses them; a provider registered without a check is built once. ``instantiate=False``
    checks the names only (a process that runs no bot: ``serve --local-worker 0``)."""
    for kind in ("stt", "llm", "tts"):
        for name in expand_chain(kind, config.chain(kind)):
            if not instantiate:
                if not provider_known(kind, name):
                    raise ValueError(f"--{kind}: unknown {kind} provider {name!r}")
                continue
            try:
                check_provider(kind, name, config)
            except ProviderUnavailable as exc:
                raise ValueError(f"--{kind}: provider {name!r} cannot run here: {exc.message}") from exc
    uses_openai = any("openai" in config.chain(kind) for kind in ("stt", "llm", "tts"))
    if uses_openai and not config.api_key and "api.openai.com" in config.openai_base_url:
        log.warning("the openai provider is configured without a key: set VOICEBOT_OPENAI_API_KEY")
    _process_config[:] = [config]


def current_config() -> ProviderConfig:
    """The configuration set by :func:`configure_providers` (defaults if none was set): what bots use."""
    return _process_config[0] if _process_config else ProviderConfig()
