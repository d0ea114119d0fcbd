"""The built-in bot specs, advertised without loading the bots: media (aiortc, av) and speech (numpy, espeak)
load when a worker first builds one of these bots, not when it registers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._api import BotSpec

if TYPE_CHECKING:
    from ..media import MediaConfig
    from ._builtin import EchoBot, SpeakerBot
    from .assistant import AssistantConfig

__all__ = ["builtin_bots", "speech_label"]


def speech_label() -> str:
    """What the speaker bot speaks with, as ``bot.list`` shows it: espeak-ng when the ``tts`` extra is installed
    (checked on disk, without loading the library), else the synthetic speech-like signal."""
    from ..providers import ProviderConfig, ProviderUnavailable  # noqa: PLC0415
    from ..providers._checks import check_espeak  # noqa: PLC0415

    try:
        check_espeak(ProviderConfig())
    except ProviderUnavailable:
        return "synthetic speech-like signal (espeak-ng unavailable: install the tts extra)"
    return "espeak-ng offline TTS"


def builtin_bots(media: MediaConfig | None = None, assistant: AssistantConfig | None = None) -> dict[str, BotSpec]:
    """The built-in bot specs, using ``media`` for their peer connections and ``assistant`` (endpointing,
    barge-in, providers) for the ``assistant`` bot (defaults when None)."""

    def echo(options: Mapping[str, Any]) -> EchoBot:
        from ._builtin import EchoBot  # noqa: PLC0415 - media loads with the first bot

        return EchoBot(media)

    def speaker(options: Mapping[str, Any]) -> SpeakerBot:
        from ._builtin import SpeakerBot  # noqa: PLC0415 - media and speech load with the first bot

        return SpeakerBot.from_options(options, media)

    def assistant_bot(options: Mapping[str, Any]) -> Any:
        from .assistant import AssistantBot, AssistantOptions  # noqa: PLC0415 - speech stack loads on first use

        return AssistantBot(AssistantOptions.from_options(options), assistant, media)

    return {
        "assistant": BotSpec("assistant", "a voice assistant you can talk to (speech in, speech out, captions)",
                             assistant_bot),
        "echo": BotSpec("echo", "returns each member's own audio to that member", echo),
        "speaker": BotSpec("speaker", f"says the given text ({speech_label()})", speaker),
    }
