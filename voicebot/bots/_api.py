"""The bot interface: what a worker runs, and what a bot gets to work with.

A bot is any object with ``async def run(self, session: BotSession) -> None`` (:class:`Bot`). The worker
creates it from a :class:`BotSpec` (``factory(options)``) for every ``bot.add``, connects it to the hub as a
peer of kind ``bot``, joins it to the lobby and calls ``run``; ``run`` returning ends the job, raising is a
crash (the worker's supervisor restarts it, transient policy). Bots that talk to humans over WebRTC subclass
:class:`~voicebot.bots.MediaBot` and implement ``on_peer(link)`` only: the AI assistant plugs in there
(read ``link.audio_in``, write ``link.audio_out``, ``session.chat(...)``), with no change to this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from ._session import BotSession

__all__ = ["Bot", "BotFactory", "BotSpec"]


@runtime_checkable
class Bot(Protocol):
    """One running bot instance (one per ``bot.add``).

    A bot may also define ``async def prepare(self) -> None`` for slow set-up (e.g. speech synthesis, which must
    run in a thread, never on the event loop): the worker awaits it before the bot joins its lobby and reports a
    :class:`~voicebot.errors.VoiceBotError` from it as ``worker.failed`` (retryable per the error).
    """

    async def run(self, session: BotSession) -> None:
        """Be the bot until the job ends (cancelled) or the bot is done (return)."""


BotFactory = Callable[[Mapping[str, Any]], Bot]
"""Builds a bot from ``bot.add``'s options; raises :class:`~voicebot.errors.ValidationError` on bad options."""


@attrs.frozen
class BotSpec:
    """A kind of bot a worker can run (advertised in ``worker.register`` and ``bot.list``)."""

    name: str
    """Wire name (``bot.add {bot: name}``): lower case, digits, ``_``/``-``, ≤ 32 chars."""
    description: str
    """One line shown in ``bot.list``."""
    factory: BotFactory
    """``factory(options) -> Bot``."""
    needs_media: bool = True
    """Whether the worker must open the process's media loop (aiortc) for it."""

    def descriptor(self) -> dict[str, str]:
        """``{name, description}`` as sent in ``worker.register``."""
        return {"name": self.name, "description": self.description}
