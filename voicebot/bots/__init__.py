"""Bots: peers of kind ``bot`` that join lobbies and talk to the humans in them.

- :class:`Bot` / :class:`BotSpec`: the interface a worker runs (``run(session)``) and how it is advertised.
- :class:`BotSession`: the bot's hub connection, its lobby's members and events.
- :class:`MediaBot`: one peer connection per human member with perfect negotiation (the bot is polite) and
  per-peer recovery (rebuild on ICE failure or failed renegotiation; drop that peer only after repeated
  failure); subclasses implement ``on_peer(link)``.
- Built-ins: :class:`EchoBot` (``echo``), :class:`SpeakerBot` (``speaker``) and the voice assistant
  (``assistant``, :mod:`voicebot.bots.assistant`, loaded on first use); :func:`builtin_bots`.
- :class:`HumanPeer`: the human side of the convention, for tests and benchmarks.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._api import Bot, BotFactory, BotSpec
    from ._builtin import EchoBot, SpeakerBot
    from ._human import HumanPeer
    from ._peers import MediaBot, PeerLink, PeerStats
    from ._session import BOT_GONE_CLOSE, BotSession, LobbyGone
    from ._specs import builtin_bots
    from ._speech import SPEECH_BACKEND, synthesize

__all__ = [
    "BOT_GONE_CLOSE",
    "SPEECH_BACKEND",
    "Bot",
    "BotFactory",
    "BotSession",
    "BotSpec",
    "EchoBot",
    "HumanPeer",
    "LobbyGone",
    "MediaBot",
    "PeerLink",
    "PeerStats",
    "SpeakerBot",
    "builtin_bots",
    "synthesize",
]

__getattr__ = lazy_exports(__name__, {
    "Bot": "._api",
    "BotFactory": "._api",
    "BotSpec": "._api",
    "EchoBot": "._builtin",
    "SpeakerBot": "._builtin",
    "builtin_bots": "._specs",
    "HumanPeer": "._human",
    "MediaBot": "._peers",
    "PeerLink": "._peers",
    "PeerStats": "._peers",
    "BOT_GONE_CLOSE": "._session",
    "BotSession": "._session",
    "LobbyGone": "._session",
    "SPEECH_BACKEND": "._speech",
    "synthesize": "._speech",
})
