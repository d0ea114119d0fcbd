"""The hub core: sessions, lobbies, membership and routing as a sans-IO state machine.

Events go in (``hello``, ``request``, ``disconnect``, ``expire``) with the current time; decisions come out
as a list of :mod:`actions <voicebot.hub._model>`. Domain failures are raised as VoiceBotErrors for the
caller's error handler. No trio, no sockets: every rule here is unit-tested without a network.
"""

from __future__ import annotations

import heapq
import random
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..auth._tokens import new_token as _new_token
from ..auth._tokens import token_hash
from ..errors import LobbyError, SessionError
from ..protocol import (
    BotStatus,
    Caption,
    Chat,
    Hello,
    LobbyCreate,
    LobbyJoin,
    LobbyLeave,
    LobbyList,
    Ping,
    Request,
    Signal,
)
from . import _admission, _lobbies
from ._admission import Suspended
from ._bots import Tickets
from ._model import (
    Action,
    Admit,
    Close,
    ConnId,
    Greeted,
    HashPassword,
    HubConfig,
    Lobby,
    Notice,
    Persist,
    SaveSession,
    Send,
    Session,
    SessionGone,
    VerifyPassword,
    validate_name,
)

__all__ = ["BOT_GONE_CLOSE", "KICKED", "RESUMED_ELSEWHERE", "Hub", "token_hash"]

#: Close code for a socket replaced by a resume on another connection.
RESUMED_ELSEWHERE = 4001
#: Close code for a peer removed by an admin.
KICKED = 4004
#: Close code for a bot's socket when the hub ended the bot (removed, its worker gone or failed).
BOT_GONE_CLOSE = 4010


def _nobody(name: str) -> bool:
    return False


class Hub:
    """All lobbies and sessions of one server.

    Peer, lobby, worker and job ids are capabilities an attacker sees (a private lobby's id is what lets one
    join it), so they come from ``secrets`` (96 bits) unless a seeded ``rng`` is injected — tests and chaos
    replays only, never production. ``new_token`` makes resume tokens (default ``secrets``);
    ``wall_clock`` stamps chat messages and lobby creation (data, never used for timing).
    ``registered_name(name)`` tells whether a name is registered (an in-memory lookup the shell provides:
    persistent lobbies need admin rights or a registered name).

    Requests that need slow I/O suspend at an :data:`~voicebot.hub.Effect` and resume when the shell feeds its
    outcome back (:meth:`password_hashed`, :meth:`password_checked`, :meth:`admitted`, :meth:`persisted`) or
    :meth:`abandon` it.
    """

    def __init__(
        self,
        config: HubConfig | None = None,
        *,
        rng: random.Random | None = None,
        new_token: Callable[[], str] = _new_token,
        wall_clock: Callable[[], float] = time.time,
        registered_name: Callable[[str], bool] = _nobody,
    ) -> None:
        self.config = config if config is not None else HubConfig()
        self.rng = rng
        """The injected id source (None: ``secrets``)."""
        self.new_token = new_token
        self.wall_clock = wall_clock
        self.registered_name = registered_name
        self.suspended = Suspended()
        """Requests waiting for the outcome of an effect."""
        self.sessions: dict[str, Session] = {}
        self.lobbies: dict[str, Lobby] = {}
        self._by_conn: dict[ConnId, Session] = {}
        self._by_token: dict[str, Session] = {}
        self.tickets = Tickets(new_token)
        """Join tickets for bots admitted into password-protected lobbies."""
        self._timers: list[tuple[float, int, Session | Lobby]] = []
        self._timer_seq = 0
        self.items_examined = 0
        """Hub work counter: sessions, lobbies, members and timers looked at (a cost probe for tests and benches)."""

    # -- queries ------------------------------------------------------------------------------------
    def session_of(self, conn: ConnId) -> Session | None:
        """The session bound to ``conn`` (None before ``hello``)."""
        return self._by_conn.get(conn)

    def new_id(self, prefix: str) -> str:
        """A fresh, unguessable id like ``p_1a2b3c4d5e6f708192a3b4c5`` (96 bits from ``secrets``, or from the
        injected seeded rng in tests)."""
        while True:
            bits = secrets.randbits(96) if self.rng is None else self.rng.getrandbits(96)
            candidate = f"{prefix}_{bits:024x}"
            if candidate not in self.sessions and candidate not in self.lobbies:
                return candidate

    def check_new_connection(self, conn: ConnId) -> None:
        """Raise ``already_hello`` when ``conn`` already said hello."""
        if conn in self._by_conn:
            raise SessionError("hello was already sent on this connection", code="already_hello")

    def find_resumable(self, token: str) -> Session | None:
        """The session that ``token`` would resume (live or in grace), if any."""
        return self._by_token.get(token_hash(token))

    def restore_session(self, session: Session, grace_deadline: float) -> None:
        """Re-create a session loaded from the store after a restart; it waits in grace for its client.

        Its lobby is kept only if that lobby exists (persistent lobbies are restored first).
        """
        if session.lobby_id is not None:
            lobby = self.lobbies.get(session.lobby_id)
            if lobby is None or len(lobby.members) >= lobby.max_members:
                session.lobby_id = None
            else:
                lobby.members[session.peer_id] = None
                lobby.empty_since = None
        session.conn = None
        session.grace_deadline = grace_deadline
        self.sessions[session.peer_id] = session
        self._by_token[session.token_hash] = session
        self._schedule(grace_deadline, session)

    def kick(self, peer_id: str, now: float) -> list[Action]:
        """End ``peer_id``'s session (admin): it hears ``lobby.left`` with reason ``kicked``, its socket is closed
        with :data:`KICKED` and its lobby hears ``peer.left`` with reason ``kicked``."""
        session = self.sessions.get(peer_id)
        if session is None:
            raise LobbyError(f"no peer {peer_id!r}", code="peer_not_found", field="peer_id")
        told: list[Action] = []
        if session.conn is not None and session.lobby_id is not None:
            told.append(Send((session.conn,), {"type": "lobby.left", "lobby_id": session.lobby_id,
                                               "reason": "kicked"}))
        return told + self._remove(session, KICKED, "removed by an administrator", "kicked", now)

    def end_bot(self, peer_id: str, reason: str, now: float) -> list[Action]:
        """End a bot's session at once: its socket is closed with :data:`BOT_GONE_CLOSE` (the bot stops instead of
        resuming) and its lobby hears ``peer.left`` with ``reason``. Nothing happens for an unknown peer (the bot
        may be gone already)."""
        session = self.sessions.get(peer_id)
        return [] if session is None else self._remove(session, BOT_GONE_CLOSE, f"bot ended: {reason}", reason, now)

    def _remove(self, session: Session, code: int, close_reason: str, reason: str, now: float) -> list[Action]:
        closing: list[Action] = [Close(session.conn, code, close_reason)] if session.conn is not None else []
        return closing + self.end_session(session, reason, now)

    def lobby_state(self, conn: ConnId) -> dict[str, Any]:
        """``lobby.state {lobby, peers}`` for the session of ``conn`` (``lobby: null`` outside a lobby or before
        hello): what a client resynchronises from."""
        return _lobbies.state(self, self._by_conn.get(conn))

    def close_lobby(self, lobby_id: str) -> list[Action]:
        """Delete a lobby (admin): every member gets ``lobby.left`` with reason ``closed``."""
        lobby = self.lobbies.get(lobby_id)
        if lobby is None:
            raise LobbyError(f"no lobby {lobby_id!r}", code="lobby_not_found", field="lobby_id")
        return _lobbies.delete(self, lobby, "closed")

    def next_deadline(self) -> float | None:
        """The earliest Trio time at which :meth:`expire` has work to do (amortised O(1): a heap peek)."""
        timers = self._timers
        while timers:
            self.items_examined += 1
            deadline, _, item = timers[0]
            if self._due(deadline, item):
                return deadline
            heapq.heappop(timers)  # stale: resumed, ended, joined or deleted since it was scheduled
        return None

    def _schedule(self, deadline: float, item: Session | Lobby) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, item))

    def _due(self, deadline: float, item: Session | Lobby) -> bool:
        """True while the timer ``(deadline, item)`` still stands (entries are never removed early, only skipped)."""
        if isinstance(item, Session):
            return self.sessions.get(item.peer_id) is item and item.grace_deadline == deadline
        return (self.lobbies.get(item.id) is item and item.empty_since is not None
                and item.empty_since + self.config.empty_lobby_ttl == deadline)

    # -- events -------------------------------------------------------------------------------------
    def hello(self, conn: ConnId, req: Hello, now: float, *, admin: bool = False) -> list[Action]:
        """Bind ``conn`` to a new session, or to a resumed one when ``req.resume`` is valid and in grace.

        An unknown or expired resume token starts a new session (``resumed: false`` tells the client). The decision
        comes first as :class:`Greeted`, then the session is stored (:class:`SaveSession`) before ``welcome``.
        """
        self.check_new_connection(conn)
        name = validate_name(req.name)
        actions: list[Action] = []
        session = self._by_token.get(token_hash(req.resume)) if req.resume else None
        resumed = session is not None
        if session is not None:
            if session.conn is not None:
                self._by_conn.pop(session.conn, None)
                actions.append(Close(session.conn, RESUMED_ELSEWHERE, "session resumed on another connection"))
            del self._by_token[session.token_hash]
            session.grace_deadline = None
            session.admin = session.admin or admin
        else:
            session = Session(self.new_id("p"), name, req.kind, "", None, admin=admin,
                              session_id=token_hash(self.new_token()))
            self.sessions[session.peer_id] = session
        token = self.new_token()
        session.token_hash = token_hash(token)
        session.conn = conn
        self._by_token[session.token_hash] = session
        self._by_conn[conn] = session
        # The new resume token is stored before welcome hands it out, so it survives a restart.
        actions += [Greeted(conn, session.peer_id, session.name, session.kind, resumed, session.admin),
                    SaveSession(session.peer_id)]
        welcome: dict[str, Any] = {
            "type": "welcome", "peer_id": session.peer_id, "resume_token": token, "name": session.name,
            "resumed": resumed, "lobby_id": session.lobby_id, "heartbeat_interval": self.config.heartbeat_interval,
            "resume_grace": self.config.resume_grace, "protocol": 1, "server": self.config.server,
            "kind": session.kind, "admin": session.admin,
            "ice_servers": [dict(server) for server in self.config.ice_servers],
        }
        if req.id is not None:
            welcome["reply_to"] = req.id
        if resumed and session.lobby_id is not None:
            lobby = self.lobbies[session.lobby_id]
            welcome["lobby"] = lobby.public()
            welcome["peers"] = _lobbies.peers_except(self, lobby, session.peer_id)
        actions.append(Send((conn,), welcome))
        if session.buffer:
            actions.extend(Send((conn,), msg) for msg in session.buffer)
            session.buffer.clear()
            session.buffer_bytes = 0
        actions.append(Notice("session.resumed" if resumed else "session.started",
                              {"peer_id": session.peer_id, "conn": conn, "name": session.name}))
        return actions

    def request(self, conn: ConnId, req: Request, now: float) -> list[Action]:
        """Handle any request after ``hello`` (``ping`` is also allowed before it).

        ``lobby.create`` and ``lobby.join`` may suspend at an effect (see the class docstring).
        """
        session = self._by_conn.get(conn)
        if session is not None and type(req) is Signal:  # the relay's hot path first
            return _lobbies.signal(self, session, req, now)
        if isinstance(req, Ping):
            return [Send((conn,), _reply(req, {"type": "pong"}))]
        if session is None:
            if isinstance(req, Hello):
                return self.hello(conn, req, now)
            raise SessionError("send hello first", code="hello_required")
        if isinstance(req, Hello):
            self.check_new_connection(conn)
        if isinstance(req, LobbyList):
            lobbies, next_cursor = _lobbies.public_list(self, req.cursor, req.limit)
            return [Send((conn,), _reply(req, {"type": "lobby.list", "lobbies": lobbies,
                                               "next_cursor": next_cursor}))]
        if isinstance(req, LobbyLeave):
            return _lobbies.leave(self, session, req, now)
        if isinstance(req, LobbyJoin):
            return _admission.join(self, session, conn, req, now)
        if isinstance(req, Signal):
            return _lobbies.signal(self, session, req, now)
        if isinstance(req, Chat):
            return _lobbies.chat(self, session, req, now)
        if isinstance(req, LobbyCreate):
            return _admission.create(self, session, conn, req, now)
        if isinstance(req, Caption):
            return _lobbies.caption(self, session, req, now)
        if isinstance(req, BotStatus):
            return _lobbies.bot_status(self, session, req, now)
        raise SessionError(f"{req.TYPE} is not handled by the hub core", code="unknown_type")

    # -- outcomes of effects ------------------------------------------------------------------------
    def password_hashed(self, op: int, digest: str, now: float) -> list[Action]:
        """Outcome of :class:`HashPassword` ``op``: the pending ``lobby.create`` goes on with ``digest``."""
        return _admission.hashed(self, self.suspended.resume(op, HashPassword), digest, now)

    def password_checked(self, op: int, ok: bool, now: float) -> list[Action]:
        """Outcome of :class:`VerifyPassword` ``op``: the pending ``lobby.join`` goes on, or ``wrong_password``."""
        return _admission.verified(self, self.suspended.resume(op, VerifyPassword), ok, now)

    def admitted(self, op: int, now: float) -> list[Action]:
        """Outcome of :class:`Admit` ``op``: the place is taken cluster-wide; the pending join goes on."""
        return _admission.admitted(self, self.suspended.resume(op, Admit), now)

    def persisted(self, op: int, now: float) -> list[Action]:
        """Outcome of :class:`Persist` ``op``: the write is committed; returns the acknowledgement."""
        return _admission.persisted(self, self.suspended.resume(op, Persist), now)

    def abandon(self, op: int) -> None:
        """The shell could not complete effect ``op`` (its error, or cancellation): the request is forgotten and
        nothing of it happened. Idempotent."""
        self.suspended.abandon(op)

    def add_lobby(self, lobby: Lobby, now: float) -> None:
        """Register a lobby (a new one, or a persistent one restored at start)."""
        lobby.empty_since = None if lobby.persistent else now
        self.lobbies[lobby.id] = lobby
        if lobby.empty_since is not None:
            self._schedule(lobby.empty_since + self.config.empty_lobby_ttl, lobby)

    def disconnect(self, conn: ConnId, now: float) -> list[Action]:
        """The socket of ``conn`` is gone: its session (if any) enters the resume grace; its suspended request
        (if any) is forgotten."""
        self.suspended.forget(conn)
        session = self._by_conn.pop(conn, None)
        if session is None or session.conn != conn:
            return []
        session.conn = None
        session.grace_deadline = now + self.config.resume_grace
        self._schedule(session.grace_deadline, session)
        return [Notice("session.disconnected", {"peer_id": session.peer_id, "conn": conn})]

    def expire(self, now: float) -> list[Action]:
        """End sessions whose grace is over and drop ephemeral lobbies left empty too long.

        Work is proportional to the timers that are due (taken from a deadline heap), never to all sessions.
        """
        actions: list[Action] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            self.items_examined += 1
            deadline, _, item = heapq.heappop(timers)
            if not self._due(deadline, item):
                continue
            if isinstance(item, Session):
                actions += self.end_session(item, "disconnected", now)
            else:
                actions += _lobbies.delete(self, item, "expired")
        return actions

    def end_session(self, session: Session, reason: str, now: float) -> list[Action]:
        """End ``session`` for good: it leaves its lobby with ``reason`` and its resume token dies."""
        actions: list[Action] = []
        if session.lobby_id is not None:
            actions += _lobbies.remove_member(self, session, reason, now)
        self.sessions.pop(session.peer_id, None)
        self._by_token.pop(session.token_hash, None)
        if session.conn is not None:
            self._by_conn.pop(session.conn, None)
        actions.append(SessionGone(session.peer_id, reason, session.session_id))
        return actions

    # -- delivery -----------------------------------------------------------------------------------
    def deliver(self, peer_ids: Iterable[str], message: dict[str, Any], now: float) -> list[Action]:
        """Send ``message`` to peers: live ones now, ones in grace into their bounded resume buffer (a buffer that
        would exceed ``resume_buffer`` messages or ``resume_buffer_bytes`` bytes ends that peer's session)."""
        return _lobbies.deliver(self, peer_ids, message, now)

    def require(self, conn: ConnId) -> Session:
        """The session of ``conn``, or ``hello_required``."""
        session = self._by_conn.get(conn)
        if session is None:
            raise SessionError("send hello first", code="hello_required")
        return session


def _reply(req: Request, message: dict[str, Any]) -> dict[str, Any]:
    if req.id is not None:
        message["reply_to"] = req.id
    return message
