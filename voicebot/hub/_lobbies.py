"""Lobby rules of the hub core: create, join, leave, relay signals and chat (sans-IO helpers of :class:`Hub`)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..auth._names import strip_unsafe
from ..errors import AuthError, LobbyError, RateLimitError, Severity, ValidationError, WebRTCError
from ..protocol import BotStatus, Caption, Chat, LobbyCreate, LobbyJoin, LobbyLeave, Signal, encode
from ._model import Action, Buffered, ConnId, Forward, Lobby, Notice, SaveSession, Send, Session, Warn

if TYPE_CHECKING:
    from ._core import Hub

__all__ = ["build", "chat", "check_full", "check_room", "delete", "enter", "joined_reply", "leave", "peers_except"]
__all__ += ["bot_status", "caption", "deliver", "public_list", "remove_member", "signal", "state"]


def check_room(hub: Hub) -> None:
    """``lobby_limit`` when ``HubConfig.max_lobbies`` lobbies exist already."""
    if len(hub.lobbies) >= hub.config.max_lobbies:
        raise RateLimitError("too many lobbies exist; try again later", code="lobby_limit", retry_after=60.0)


def build(hub: Hub, req: LobbyCreate, now: float, password_hash: str | None) -> Lobby:
    """Check limits and make (but do not register) the lobby ``req`` asks for; ``password_hash`` is the digest of
    ``req.password`` (hashed by the shell: slow by design)."""
    check_room(hub)
    return Lobby(
        id=hub.new_id("l"), name=req.name, private=req.private, password_hash=password_hash,
        max_members=req.max_members, persistent=req.persistent, created=hub.wall_clock(),
    )


def public_list(hub: Hub, cursor: str | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """One page of public ``lobby`` objects ordered by id, after ``cursor`` (an id; exclusive), and the cursor of
    the next page (None on the last). Ordering by id keeps pages stable while lobbies come and go; one pass
    with a bounded heap, O(n log limit)."""
    ids = (lid for lid, lobby in hub.lobbies.items() if not lobby.private and (cursor is None or lid > cursor))
    page = heapq.nsmallest(limit + 1, ids)
    more = len(page) > limit
    page = page[:limit]
    return [hub.lobbies[lid].public() for lid in page], (page[-1] if more else None)


def peers_except(hub: Hub, lobby: Lobby, peer_id: str) -> list[dict[str, Any]]:
    """``peer`` objects of the lobby's members other than ``peer_id``, in join order."""
    return [hub.sessions[pid].peer_object() for pid in lobby.members if pid != peer_id and pid in hub.sessions]


def state(hub: Hub, session: Session | None) -> dict[str, Any]:
    """``lobby.state {lobby, peers}``: the authoritative view of the session's lobby (``lobby: null`` outside one)."""
    lobby = hub.lobbies.get(session.lobby_id) if session is not None and session.lobby_id else None
    if session is None or lobby is None:
        return {"type": "lobby.state", "lobby": None, "peers": []}
    return {"type": "lobby.state", "lobby": lobby.public(), "peers": peers_except(hub, lobby, session.peer_id)}


def check_full(lobby: Lobby) -> None:
    """``lobby_full`` when no place is left."""
    if len(lobby.members) >= lobby.max_members:
        raise LobbyError(f"lobby is full ({lobby.max_members} members)", code="lobby_full", retryable=True)


def enter(hub: Hub, session: Session, lobby: Lobby, req: LobbyJoin, now: float) -> list[Action]:
    """Make ``session`` a member of ``lobby`` (admission already decided), leaving any other lobby first;
    idempotent for the lobby one is in. Leaving a persistent lobby for an ephemeral one stores the session first
    (:class:`SaveSession`): its stored lobby must not bring it back there after a restart."""
    if session.lobby_id == lobby.id:
        return [joined_reply(hub, session, lobby, req)]
    check_full(lobby)
    old_lobby = hub.lobbies.get(session.lobby_id) if session.lobby_id is not None else None
    stored = old_lobby is not None and old_lobby.persistent and not lobby.persistent
    actions: list[Action] = [SaveSession(session.peer_id)] if stored else []  # carried out before any reply
    if session.lobby_id is not None:
        old = session.lobby_id
        actions += remove_member(hub, session, "left", now)
        if session.conn is not None:
            actions.append(Send((session.conn,), {"type": "lobby.left", "lobby_id": old, "reason": "switched"}))
    others = list(lobby.members)
    lobby.members[session.peer_id] = None
    lobby.empty_since = None
    session.lobby_id = lobby.id
    actions.append(joined_reply(hub, session, lobby, req))
    actions += hub.deliver(others, {"type": "peer.joined", "lobby_id": lobby.id, "peer": session.peer_object()}, now)
    actions.append(Notice("lobby.joined", {"lobby_id": lobby.id, "peer_id": session.peer_id}))
    return actions


def joined_reply(hub: Hub, session: Session, lobby: Lobby, req: LobbyJoin) -> Send:
    """``lobby.joined {lobby, peers}`` for ``session``'s connection."""
    assert session.conn is not None
    message: dict[str, Any] = {"type": "lobby.joined", "lobby": lobby.public(),
                               "peers": peers_except(hub, lobby, session.peer_id)}
    if req.id is not None:
        message["reply_to"] = req.id
    return Send((session.conn,), message)


def leave(hub: Hub, session: Session, req: LobbyLeave, now: float) -> list[Action]:
    """``lobby.leave``: the others get ``peer.left`` with reason ``left``; leaving a persistent lobby stores the
    session first (:class:`SaveSession`), so a restart does not bring it back."""
    if session.lobby_id is None or session.conn is None:
        raise LobbyError("you are not in a lobby", code="not_in_lobby")
    lobby_id = session.lobby_id
    lobby = hub.lobbies.get(lobby_id)
    actions = remove_member(hub, session, "left", now)
    reply: dict[str, Any] = {"type": "lobby.left", "lobby_id": lobby_id, "reason": "left"}
    if req.id is not None:
        reply["reply_to"] = req.id
    stored: list[Action] = [SaveSession(session.peer_id)] if lobby is not None and lobby.persistent else []
    return [*stored, Send((session.conn,), reply), *actions]


def remove_member(hub: Hub, session: Session, reason: str, now: float) -> list[Action]:
    """Take ``session`` out of its lobby; tell the others; delete an ephemeral lobby left empty."""
    lobby = hub.lobbies.get(session.lobby_id) if session.lobby_id else None
    session.lobby_id = None
    if lobby is None:
        return []
    lobby.members.pop(session.peer_id, None)
    lobby.pending_offers = {pair for pair in lobby.pending_offers if session.peer_id not in pair}
    actions = hub.deliver(
        lobby.members, {"type": "peer.left", "lobby_id": lobby.id, "peer_id": session.peer_id, "reason": reason}, now
    )
    actions.append(Notice("lobby.left", {"lobby_id": lobby.id, "peer_id": session.peer_id, "reason": reason}))
    if not lobby.members and not lobby.persistent:
        actions += delete(hub, lobby, "empty")
    return actions


def delete(hub: Hub, lobby: Lobby, reason: str) -> list[Action]:
    """Remove ``lobby``; members still in it are told ``lobby.left`` with ``reason`` (e.g. ``closed``)."""
    hub.lobbies.pop(lobby.id, None)
    actions: list[Action] = []
    for pid in list(lobby.members):
        session = hub.sessions.get(pid)
        if session is not None and session.lobby_id == lobby.id:
            session.lobby_id = None
            if session.conn is not None:
                actions.append(Send((session.conn,), {"type": "lobby.left", "lobby_id": lobby.id, "reason": reason}))
    lobby.members.clear()
    actions.append(Notice("lobby.deleted", {"lobby_id": lobby.id, "reason": reason, "persistent": lobby.persistent}))
    return actions


def signal(hub: Hub, session: Session, req: Signal, now: float) -> list[Action]:
    """Relay a WebRTC signal to a member of the sender's own lobby; detect offer glare."""
    if session.lobby_id is None or session.conn is None:
        raise LobbyError("join a lobby before signaling", code="not_in_lobby")
    if req.to == session.peer_id:
        raise ValidationError("to: cannot signal yourself", field="to")
    lobby = hub.lobbies[session.lobby_id]
    if req.to not in lobby.members:
        raise LobbyError(f"no peer {req.to!r} in your lobby", code="peer_not_found", field="to")
    actions: list[Action] = []
    me, peer = session.peer_id, req.to
    if req.kind == "offer":
        if (peer, me) in lobby.pending_offers:
            polite = max(me, peer)
            actions.append(Warn(session.conn, WebRTCError(
                f"offer glare: your offer crossed one from {peer}; the polite peer ({polite}) must roll back",
                code="offer_glare", severity=Severity.MEDIUM, retryable=True, recovery="glare",
                context={"peer": peer, "polite": polite},
            )))
        lobby.pending_offers.add((me, peer))
    elif req.kind == "answer":
        lobby.pending_offers.discard((peer, me))
    elif req.kind == "bye":
        lobby.pending_offers.discard((me, peer))
        lobby.pending_offers.discard((peer, me))
    message: dict[str, Any] = {"type": "signal", "from": me, "kind": req.kind, "lobby_id": lobby.id}
    if req.sdp is not None and req.kind in ("offer", "answer"):  # the model already refuses it elsewhere
        message["sdp"] = req.sdp
    if req.kind == "candidate":
        message["candidate"] = req.candidate.model_dump() if req.candidate is not None else None
    actions += hub.deliver((peer,), message, now)
    if req.id is not None:
        actions.append(Send((session.conn,), {"type": "signal.sent", "reply_to": req.id, "to": peer}))
    return actions


def chat(hub: Hub, session: Session, req: Chat, now: float) -> list[Action]:
    """Broadcast a chat line to every member of the sender's lobby, sender included."""
    if session.lobby_id is None:
        raise LobbyError("join a lobby before chatting", code="not_in_lobby")
    lobby = hub.lobbies[session.lobby_id]
    text = strip_unsafe(req.text)  # control, bidi-override and zero-width characters never reach other clients
    if not text.strip():
        raise ValidationError("text: nothing left after removing control characters", field="text")
    message = {"type": "chat", "lobby_id": lobby.id, "from": session.peer_id, "name": session.name,
               "text": text, "ts": int(hub.wall_clock() * 1000)}
    return hub.deliver(list(lobby.members), message, now)


def caption(hub: Hub, session: Session, req: Caption, now: float) -> list[Action]:
    """Broadcast a caption to every member of the sender's lobby, sender included.

    Only bots caption for others: a ``user`` may send ``role: "user"`` about itself only (``about`` absent or its
    own id); ``role: "assistant"`` or ``about`` another peer needs kind ``bot`` (``forbidden``). ``about`` must
    name a member of the lobby (``peer_not_found``). ``about`` defaults to the sender.
    """
    if session.lobby_id is None:
        raise LobbyError("join a lobby before sending captions", code="not_in_lobby")
    lobby = hub.lobbies[session.lobby_id]
    about = req.about if req.about is not None else session.peer_id
    if session.kind != "bot":
        if req.role == "assistant":
            raise AuthError("only bots may send assistant captions", code="forbidden", field="role")
        if about != session.peer_id:
            raise AuthError("only bots may caption another peer", code="forbidden", field="about")
    if about not in lobby.members:
        raise LobbyError(f"no member {about!r} in this lobby", code="peer_not_found", field="about")
    text = strip_unsafe(req.text)  # the same rule as chat: no control, bidi-override or zero-width characters
    if not text.strip():
        raise ValidationError("text: nothing left after removing control characters", field="text")
    message = {"type": "caption", "lobby_id": lobby.id, "from": session.peer_id, "name": session.name,
               "role": req.role, "about": about, "text": text, "final": req.final, "turn_id": req.turn_id,
               "ts": int(hub.wall_clock() * 1000)}
    return hub.deliver(list(lobby.members), message, now)


def bot_status(hub: Hub, session: Session, req: BotStatus, now: float) -> list[Action]:
    """Broadcast a bot's state (``listening``/``thinking``/``speaking``/``degraded``) to its lobby; bots only."""
    if session.kind != "bot":
        raise AuthError("only bots may send bot.status", code="forbidden", field="state")
    if session.lobby_id is None:
        raise LobbyError("join a lobby before sending bot.status", code="not_in_lobby")
    lobby = hub.lobbies[session.lobby_id]
    message = {"type": "bot.status", "lobby_id": lobby.id, "peer_id": session.peer_id, "state": req.state,
               "detail": req.detail, "ts": int(hub.wall_clock() * 1000)}
    return hub.deliver(list(lobby.members), message, now)


def deliver(hub: Hub, peer_ids: Iterable[str], message: dict[str, Any], now: float) -> list[Action]:
    """Send ``message`` to peers: live ones now, ones in grace into their bounded resume buffer.

    A buffer that would hold more than ``resume_buffer`` messages or ``resume_buffer_bytes`` bytes (of
    encoded JSON) ends that peer's session (reason ``disconnected``).
    """
    live: list[ConnId] = []
    overflow: list[Session] = []
    remote: dict[str, list[str]] = {}
    buffered: list[str] | None = None  # made only when someone in grace gets a message
    size: int | None = None
    for pid in peer_ids:
        hub.items_examined += 1
        session = hub.sessions.get(pid)
        if session is None:
            continue
        if session.home is not None:  # cluster mode: a member on another hub
            remote.setdefault(session.home, []).append(pid)
            continue
        if session.conn is not None and not session.held:
            live.append(session.conn)
            continue
        if size is None:  # measured once, and only when someone is in grace (or held)
            size = len(encode(message).encode("utf-8"))
        if (len(session.buffer) < hub.config.resume_buffer
                and session.buffer_bytes + size <= hub.config.resume_buffer_bytes):
            session.buffer.append(message)
            session.buffer_bytes += size
            if session.conn is None:  # in grace (a held session is live: its socket gets the buffer soon)
                if buffered is None:
                    buffered = []
                buffered.append(pid)
        else:
            overflow.append(session)
    actions: list[Action] = [Send(tuple(live), message)] if live else []
    actions += [Forward(home, tuple(pids), message) for home, pids in remote.items()]
    if buffered and hub.config.announce_buffered:
        actions.append(Buffered(tuple(buffered)))
    for session in overflow:
        if session.peer_id in hub.sessions:
            actions += hub.end_session(session, "disconnected", now)
    return actions
