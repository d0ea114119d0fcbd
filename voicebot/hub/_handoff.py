"""A session changing hands: between hubs (cluster mode), and from its buffer to a new socket.

The hub giving a session away (:func:`hand_off`) keeps it as a remote member whose ``home`` is the new hub, so
lobby rules and messages still in flight reach it there; the hub taking it over (:func:`adopt`) re-creates it in
its resume grace, with the messages buffered for it, so the core's ordinary ``hello {resume}`` then resumes it.
While a ``hello`` is stored, before its ``welcome`` is out, the shell holds newer messages back
(:func:`hold_delivery`, :func:`release_delivery`).
"""

from __future__ import annotations

from typing import Any

from ..protocol import encode
from ._core import RESUMED_ELSEWHERE, Hub
from ._model import Action, Close, ConnId, Send, Session, SessionGone

__all__ = ["adopt", "hand_off", "hold_delivery", "prepend", "release_delivery"]


def hand_off(hub: Hub, peer_id: str, home: str) -> tuple[list[dict[str, Any]], list[Action]]:
    """Give ``peer_id``'s session to hub ``home``: its socket here (if any) is closed with 4001, its resume token
    stops working here, and it stays a member of its lobby as a remote member. Returns the messages buffered for
    it (oldest first, for the new hub) and the actions to carry out (a 4001 close, and ``SessionGone`` with reason
    ``moved`` and no session id); nothing when the session is not held here."""
    session = hub.sessions.get(peer_id)
    if session is None or session.home is not None:
        return [], []
    actions: list[Action] = []
    if session.conn is not None:
        hub._by_conn.pop(session.conn, None)
        actions.append(Close(session.conn, RESUMED_ELSEWHERE, "session resumed on another hub"))
    hub._by_token.pop(session.token_hash, None)
    buffered = list(session.buffer)
    session.buffer.clear()
    session.buffer_bytes = 0
    session.conn = None
    session.grace_deadline = None  # its timer is skipped from now on
    session.token_hash = ""
    session.home = home
    if session.lobby_id is None or session.lobby_id not in hub.lobbies:
        hub.sessions.pop(peer_id, None)  # in no lobby here: nothing to mirror
    # Gone from this hub (names in use here are freed); no session id: the store's record lives on there.
    actions.append(SessionGone(peer_id, "moved"))
    return buffered, actions


def adopt(hub: Hub, session: Session, grace_deadline: float) -> None:
    """Take over ``session`` (its ``token_hash`` set to the resume token's hash) in its resume grace until
    ``grace_deadline``; it replaces a remote member of the same peer. Its lobby is kept when that lobby is known
    here and has room. Messages for it from now on are buffered here until its client resumes."""
    ghost = hub.sessions.get(session.peer_id)
    if ghost is not None and ghost.home is not None and ghost.lobby_id is not None:
        lobby = hub.lobbies.get(ghost.lobby_id)
        if lobby is not None:
            lobby.members.pop(session.peer_id, None)
            lobby.pending_offers = {pair for pair in lobby.pending_offers if session.peer_id not in pair}
    hub.sessions.pop(session.peer_id, None)
    session.home = None
    hub.restore_session(session, grace_deadline)


def prepend(session: Session, buffered: list[dict[str, Any]]) -> None:
    """Put messages buffered for an adopted ``session`` elsewhere (older than any buffered here) before its own."""
    session.buffer[:0] = buffered
    session.buffer_bytes += sum(len(encode(message).encode("utf-8")) for message in buffered)


def hold_delivery(hub: Hub, peer_id: str) -> None:
    """From now on messages for live session ``peer_id`` wait in its buffer (bounded as in grace) until
    :func:`release_delivery`: while a ``hello`` stores the session, before its ``welcome`` and the messages
    replayed after it are out, nothing newer may overtake them."""
    session = hub.sessions.get(peer_id)
    if session is not None and session.home is None:
        session.held = True


def release_delivery(hub: Hub, peer_id: str, conn: ConnId) -> list[Action]:
    """End :func:`hold_delivery`: what waited goes to ``conn``, oldest first, if the session is still live on
    it (otherwise it stays buffered: disconnected meanwhile, or handed over with the rest)."""
    session = hub.sessions.get(peer_id)
    if session is None or not session.held:
        return []
    session.held = False
    if session.conn != conn or session.home is not None:
        return []
    actions: list[Action] = [Send((conn,), message) for message in session.buffer]
    session.buffer.clear()
    session.buffer_bytes = 0
    return actions

