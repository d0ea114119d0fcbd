"""Lobby admission in the hub core: ``lobby.create`` and ``lobby.join`` as decisions with effects.

A request that needs slow I/O (hashing or checking a password, a cluster-wide place, a durable write) stops at an
:data:`~voicebot.hub.Effect` carrying an ``op`` number. The hub keeps what it needs to go on in a :class:`Pending`
entry; the shell's result event (``password_hashed``, ``password_checked``, ``admitted``, ``persisted``) resumes
it, or ``abandon`` forgets it. Everything is checked again on resumption: other requests may have run meanwhile.

Write-before-acknowledge: a persistent lobby and a join into one are written (:class:`~voicebot.hub.Persist`)
before the hub registers them, so a failed write leaves the hub as it was and nothing is acknowledged.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import AuthError, LobbyError, VoiceBotError
from ..protocol import LobbyCreate, LobbyJoin
from . import _lobbies
from ._model import (
    Action,
    Admit,
    ConnId,
    HashPassword,
    Lobby,
    Membership,
    NewLobby,
    Notice,
    Persist,
    Send,
    Session,
    VerifyPassword,
)

if TYPE_CHECKING:
    from ._core import Hub

__all__ = ["Pending", "Suspended", "admitted", "create", "hashed", "join", "persisted", "verified"]

Stage = type[HashPassword | VerifyPassword | Admit | Persist]


@attrs.define(eq=False)
class Pending:
    """A request of connection ``conn`` waiting for the outcome of effect ``stage`` (one per connection: a
    connection's core requests run one after another)."""

    conn: ConnId
    req: LobbyCreate | LobbyJoin
    stage: Stage
    lobby: Lobby | None = None
    """``lobby.create``: the lobby built but not yet registered (waiting for its :class:`Persist`)."""


class Suspended:
    """Requests waiting for an effect's outcome, by ``op``; at most one per connection (a connection's core
    requests run one after another, so a newer one replaces an older, stale one)."""

    def __init__(self) -> None:
        self._by_op: dict[int, Pending] = {}
        self._by_conn: dict[ConnId, int] = {}
        self._ops = itertools.count(1)

    def __len__(self) -> int:
        return len(self._by_op)

    def add(self, pending: Pending) -> int:
        """Park ``pending``; returns the ``op`` its effect carries."""
        op = next(self._ops)
        self.forget(pending.conn)
        self._by_op[op] = pending
        self._by_conn[pending.conn] = op
        return op

    def resume(self, op: int, stage: Stage) -> Pending:
        """Take ``op`` back for its outcome; an unknown op, or one waiting for another effect, is a shell bug
        (``internal_error``)."""
        pending = self._by_op.get(op)
        if pending is None or pending.stage is not stage:
            raise VoiceBotError(f"no {stage.__name__} operation {op} is pending")
        self.abandon(op)
        return pending

    def abandon(self, op: int) -> None:
        """Forget ``op`` (idempotent)."""
        pending = self._by_op.pop(op, None)
        if pending is not None and self._by_conn.get(pending.conn) == op:
            del self._by_conn[pending.conn]

    def forget(self, conn: ConnId) -> None:
        """Forget the request ``conn`` has waiting, if any (its socket is gone)."""
        op = self._by_conn.pop(conn, None)
        if op is not None:
            self._by_op.pop(op, None)


# -- lobby.create ----------------------------------------------------------------------------------
def create(hub: Hub, session: Session, conn: ConnId, req: LobbyCreate, now: float) -> list[Action]:
    """``lobby.create``: persistent lobbies need admin rights or a registered name (``forbidden``); a password is
    hashed first (:class:`HashPassword`); a persistent lobby is written before it exists (:class:`Persist`)."""
    if req.persistent and not (session.admin or hub.registered_name(session.name)):
        raise AuthError("persistent lobbies need admin rights or a registered name", code="forbidden",
                        field="persistent")
    _lobbies.check_room(hub)  # before the slow hashing, and again when the lobby is built
    if req.password is not None:
        op = hub.suspended.add(Pending(conn, req, HashPassword))
        return [HashPassword(op, conn, req.password)]
    return _built(hub, session, conn, req, digest=None, now=now)


def hashed(hub: Hub, pending: Pending, digest: str, now: float) -> list[Action]:
    """The password of a pending ``lobby.create`` was hashed into ``digest``."""
    assert isinstance(pending.req, LobbyCreate)
    return _built(hub, hub.require(pending.conn), pending.conn, pending.req, digest=digest, now=now)


def _built(
    hub: Hub, session: Session, conn: ConnId, req: LobbyCreate, *, digest: str | None, now: float
) -> list[Action]:
    lobby = _lobbies.build(hub, req, now, digest)
    if lobby.persistent:
        op = hub.suspended.add(Pending(conn, req, Persist, lobby=lobby))
        return [Persist(op, conn, NewLobby(lobby))]
    return _register(hub, session, conn, req, lobby=lobby, now=now)


def _register(hub: Hub, session: Session, conn: ConnId, req: LobbyCreate, *, lobby: Lobby, now: float) -> list[Action]:
    hub.add_lobby(lobby, now)
    return [Send((conn,), _reply(req, {"type": "lobby.created", "lobby": lobby.public()})),
            Notice("lobby.created", {"lobby_id": lobby.id, "persistent": lobby.persistent,
                                     "peer_id": session.peer_id})]


# -- lobby.join ------------------------------------------------------------------------------------
def join(hub: Hub, session: Session, conn: ConnId, req: LobbyJoin, now: float) -> list[Action]:
    """``lobby.join``: idempotent for one's own lobby; a protected lobby needs a valid ``ticket`` or the password
    (checked by the shell: :class:`VerifyPassword`); then a place (:class:`Admit`, cluster mode), the durable
    membership (:class:`Persist`, persistent lobbies) and the join itself."""
    lobby = _lobby(hub, req.lobby_id)
    if session.lobby_id == lobby.id:
        return [_lobbies.joined_reply(hub, session, lobby, req)]
    if lobby.password_hash is not None:
        if req.ticket is not None:
            if not hub.tickets.admits(req.ticket, lobby.id, now):
                raise _wrong_password(req)
        elif req.password is None:
            raise _wrong_password(req)
        else:
            op = hub.suspended.add(Pending(conn, req, VerifyPassword))
            return [VerifyPassword(op, conn, lobby.id, lobby.password_hash, req.password)]
    return _admit(hub, session, conn, req, lobby=lobby, now=now)


def verified(hub: Hub, pending: Pending, ok: bool, now: float) -> list[Action]:
    """The shell checked a pending join's password: ``wrong_password`` unless ``ok``."""
    assert isinstance(pending.req, LobbyJoin)
    session, lobby = hub.require(pending.conn), _lobby(hub, pending.req.lobby_id)
    if session.lobby_id == lobby.id:
        return [_lobbies.joined_reply(hub, session, lobby, pending.req)]
    if not ok:
        raise _wrong_password(pending.req)
    return _admit(hub, session, pending.conn, pending.req, lobby=lobby, now=now)


def admitted(hub: Hub, pending: Pending, now: float) -> list[Action]:
    """Cluster mode: a pending join holds its place cluster-wide now."""
    assert isinstance(pending.req, LobbyJoin)
    session, lobby = hub.require(pending.conn), _lobby(hub, pending.req.lobby_id)
    return _place(hub, session, pending.conn, pending.req, lobby=lobby, now=now)


def _admit(hub: Hub, session: Session, conn: ConnId, req: LobbyJoin, *, lobby: Lobby, now: float) -> list[Action]:
    _lobbies.check_full(lobby)
    if hub.config.shared_membership:
        op = hub.suspended.add(Pending(conn, req, Admit))
        return [Admit(op, conn, lobby.id)]
    return _place(hub, session, conn, req, lobby=lobby, now=now)


def _place(hub: Hub, session: Session, conn: ConnId, req: LobbyJoin, *, lobby: Lobby, now: float) -> list[Action]:
    if lobby.persistent and session.lobby_id != lobby.id:
        _lobbies.check_full(lobby)
        op = hub.suspended.add(Pending(conn, req, Persist))
        return [Persist(op, conn, Membership(session.peer_id, lobby.id))]
    return _lobbies.enter(hub, session, lobby, req, now)


# -- both ------------------------------------------------------------------------------------------
def persisted(hub: Hub, pending: Pending, now: float) -> list[Action]:
    """The durable write of a pending request is committed: register the lobby, or make the join."""
    session = hub.require(pending.conn)
    if isinstance(pending.req, LobbyCreate):
        assert pending.lobby is not None
        return _register(hub, session, pending.conn, pending.req, lobby=pending.lobby, now=now)
    return _lobbies.enter(hub, session, _lobby(hub, pending.req.lobby_id), pending.req, now)


def _lobby(hub: Hub, lobby_id: str) -> Lobby:
    lobby = hub.lobbies.get(lobby_id)
    if lobby is None:
        raise LobbyError(f"no lobby {lobby_id!r}", code="lobby_not_found", field="lobby_id")
    return lobby


def _wrong_password(req: LobbyJoin) -> VoiceBotError:
    if req.password is None:
        return LobbyError("this lobby needs a password", code="wrong_password", field="password")
    return LobbyError("wrong password for this lobby", code="wrong_password", field="password")


def _reply(req: LobbyCreate, message: dict[str, Any]) -> dict[str, Any]:
    if req.id is not None:
        message["reply_to"] = req.id
    return message
