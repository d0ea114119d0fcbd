"""Bot membership rules of the hub core: which lobby a ``bot.add`` targets, its join ticket, who may remove a bot.

The bot scheduler (``voicebot.workers``) decides capacity and workers; who may put a bot into which lobby is a
lobby rule, so it lives here beside the other membership rules. Ending a bot is :meth:`Hub.end_bot`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..auth._tokens import token_hash
from ..errors import AuthError, LobbyError
from ._model import ConnId, Lobby

if TYPE_CHECKING:
    from ._core import Hub

__all__ = ["Tickets", "bot_lobby", "bot_ticket", "check_bot_removal", "check_bot_removal_by"]


class Tickets:
    """Join tickets: ``lobby.join {ticket}`` into a password-protected lobby without its password.

    Granted when a member admits a bot into such a lobby; only their hashes are kept, until they expire.
    """

    def __init__(self, new_token: Callable[[], str]) -> None:
        self.new_token = new_token
        self._grants: dict[str, tuple[str, float]] = {}

    def grant(self, lobby_id: str, now: float, ttl: float = 600.0) -> str:
        """A ticket for ``lobby_id`` valid for ``ttl`` seconds (expired grants are dropped here)."""
        self._grants = {h: (lid, exp) for h, (lid, exp) in self._grants.items() if exp > now}
        ticket = self.new_token()
        self._grants[token_hash(ticket)] = (lobby_id, now + ttl)
        return ticket

    def accept(self, ticket: str, lobby_id: str, expires: float) -> None:
        """Admit ``ticket`` into ``lobby_id`` until ``expires``: a ticket another hub of the cluster granted
        (the shell found it in the shared state)."""
        self._grants[token_hash(ticket)] = (lobby_id, expires)

    def admits(self, ticket: str, lobby_id: str, now: float) -> bool:
        """True when ``ticket`` was granted for ``lobby_id`` and has not expired."""
        grant = self._grants.get(token_hash(ticket))
        return grant is not None and grant[0] == lobby_id and grant[1] > now


def bot_lobby(hub: Hub, conn: ConnId, lobby_id: str | None) -> Lobby:
    """The lobby a ``bot.add`` from ``conn`` targets (``lobby_id``, default the requester's own): it must exist
    (``lobby_not_found``) and be the requester's own lobby unless the requester is an admin (``not_in_lobby``)."""
    session = hub.require(conn)
    target = lobby_id or session.lobby_id
    if target is None:
        raise LobbyError("join a lobby or give lobby_id", code="not_in_lobby", field="lobby_id")
    lobby = hub.lobbies.get(target)
    if lobby is None:
        raise LobbyError(f"no lobby {target!r}", code="lobby_not_found", field="lobby_id")
    if session.lobby_id != target and not session.admin:
        raise LobbyError("you can only add bots to your own lobby", code="not_in_lobby", field="lobby_id")
    return lobby


def bot_ticket(hub: Hub, lobby: Lobby, now: float) -> str | None:
    """A join ticket for a bot a member admits into ``lobby`` (None when the lobby has no password: not needed)."""
    return hub.tickets.grant(lobby.id, now) if lobby.password_hash is not None else None


def check_bot_removal(hub: Hub, conn: ConnId, lobby_id: str, owner: str | None) -> None:
    """May ``conn`` remove a bot in ``lobby_id`` that peer ``owner`` added? Only from one's own lobby
    (``not_in_lobby``) and only its owner (``not_bot_owner``); an admin may remove any bot."""
    session = hub.require(conn)
    check_bot_removal_by(session.peer_id, session.lobby_id, session.admin, lobby_id, owner)


def check_bot_removal_by(requester: str, requester_lobby: str | None, admin: bool, lobby_id: str,
                         owner: str | None) -> None:
    """The rule of :func:`check_bot_removal` for a requester described by value (a ``bot.remove`` another hub
    relayed: the requester's session lives there)."""
    if admin:
        return
    if requester_lobby != lobby_id:
        raise LobbyError("you can only remove bots from your own lobby", code="not_in_lobby")
    if owner != requester:
        raise AuthError("only the member who added this bot (or an admin) may remove it", code="not_bot_owner",
                        field="peer_id")
