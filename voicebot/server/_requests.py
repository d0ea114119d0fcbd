"""Core requests on the server: the hub decides, this carrier performs its actions in order.

``hello`` and every core request go to the hub; what comes back is carried out action by action. Plain actions
(sends, closes, notices) are applied in batches; an :data:`~voicebot.hub.Effect` (hash or verify a password,
take a cluster-wide place, write durably) or a :class:`~voicebot.hub.SaveSession` first flushes what precedes it,
then is awaited, and its outcome goes back to the hub, whose next actions are carried out in their turn. So a
``Persist`` is committed before anything after it is sent (write-before-acknowledge), and a failed effect is
abandoned in the hub and becomes the request's error with nothing acknowledged.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .. import protocol
from ..auth import address_key
from ..errors import RequestContext, VoiceBotError
from ..hub import (
    Action,
    Admit,
    Effect,
    HashPassword,
    Membership,
    Notice,
    Persist,
    SaveSession,
    Send,
    Session,
    VerifyPassword,
    hold_delivery,
    release_delivery,
)
from ._auth import client_host

if TYPE_CHECKING:
    from ._connection import Connection
    from ._server import Server

__all__ = ["CoreRequests"]

_EFFECTS = (HashPassword, VerifyPassword, Admit, Persist)
_AWAITED = (*_EFFECTS, SaveSession)


@attrs.define(eq=False)
class _Place:
    """A place taken cluster-wide for a join that has not happened yet (given back if the join fails)."""

    session: Session
    lobby_id: str


class CoreRequests:
    """Runs ``hello`` and the core requests of one server (extension handlers are the server's business)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def run(self, conn: Connection, req: protocol.Request, rctx: RequestContext) -> None:
        """Run one validated core request on ``conn``; domain errors propagate to the connection's handling."""
        s = self.server
        hub = s.hub
        if isinstance(req, protocol.Hello):
            hub.check_new_connection(conn.id)  # already_hello before any (slow) authentication
            if s.cluster is not None and req.resume is not None and hub.find_resumable(req.resume) is None:
                await s.cluster.sessions.adopt(req.resume)  # a session another hub holds (or held) moves here
            admin = await s.auth.check_hello(conn, req, rctx)
            await self.carry_out(conn, hub.hello(conn.id, req, trio.current_time(), admin=admin), rctx, greeting=True)
            return
        cluster = s.cluster
        if isinstance(req, protocol.LobbyCreate):
            self.check_lobby_quota(conn)
            if cluster is not None and any(self._creator(conn)[1]) and cluster.status() != "available":
                from ..cluster import cluster_unavailable  # noqa: PLC0415 - loaded with cluster mode only

                raise cluster_unavailable("lobby quotas are counted cluster-wide")
        if cluster is not None and isinstance(req, protocol.LobbyList):
            await self.carry_out(conn, await self._cluster_list(conn, req), rctx)
            return
        if cluster is not None and isinstance(req, protocol.LobbyJoin):
            async with cluster.lobbies.joining(req.lobby_id):  # a lobby made on another hub is mirrored here first
                if req.ticket is not None:  # a bot's ticket may have been granted by another hub
                    await cluster.bots.learn_ticket(req.ticket, req.lobby_id)
                await self.carry_out(conn, hub.request(conn.id, req, trio.current_time()), rctx)
            return
        if cluster is not None:
            cluster.check_request(req)  # refuse what needs another hub while Redis is unreachable
        actions = hub.request(conn.id, req, trio.current_time())
        if cluster is not None and isinstance(req, protocol.LobbyLeave):
            # Write-before-acknowledge, like joins: the leave is in Redis before its reply, so a resume on any
            # hub right after the reply does not bring the session back into the lobby it left.
            reply: list[Action] = [a for a in actions if isinstance(a, Send) and a.conns == (conn.id,)
                                   and a.message.get("type") == "lobby.left"]
            partly: VoiceBotError | None = None
            try:
                await self.carry_out(conn, [a for a in actions if a not in reply], rctx)
            except VoiceBotError as exc:  # peers on other hubs not told (Redis unreachable): said after the reply
                partly = exc
            await cluster.flush()
            await self.carry_out(conn, reply, rctx)
            if partly is not None:
                raise partly
            return
        await self.carry_out(conn, actions, rctx)

    def check_lobby_quota(self, conn: Connection) -> None:
        """``lobby_quota`` when the connection's address or peer has its maximum of live lobbies (admins are not
        held to lobby quotas). In cluster mode the lobbies are counted cluster-wide in Redis when the new lobby
        is registered instead (:meth:`_register_created`): this hub alone does not see them all."""
        session = self.server.hub.session_of(conn.id)
        if session is not None and not session.admin and self.server.cluster is None:
            self.server.quotas.check_lobby(client_host(conn.remote), session.peer_id)

    async def _register_created(self, conn: Connection | None, batch: list[Action], rctx: RequestContext) -> None:
        """Cluster mode: register a lobby ``lobby.create`` made (its notice is in ``batch``) and count it against
        its creator's address and peer cluster-wide in one atomic step; when a quota is full the lobby is
        removed again (a persistent one from the database too) and ``lobby_quota`` raised, nothing sent; when
        a quota is to be counted and Redis cannot be reached, the same with ``cluster_unavailable``."""
        cluster, s = self.server.cluster, self.server
        assert cluster is not None
        owner, limits = self._creator(conn)
        try:
            refused = await cluster.lobbies.register_created(batch, owner, limits)
        except VoiceBotError:  # Redis unreachable and a quota to count: the lobby is not created
            await self._undo_created(batch, rctx)
            raise
        if refused is None:
            return
        await self._undo_created(batch, rctx)
        raise s.quotas.lobby_refusal(refused)

    def _creator(self, conn: Connection | None) -> tuple[tuple[str, str] | None, tuple[int, int]]:
        """Cluster mode: the (address key, peer id) a lobby ``conn`` creates counts against, and the lobby quotas
        held to (per address, per peer; ``(0, 0)``: none, for admins and requests without a session)."""
        session = self.server.hub.session_of(conn.id) if conn is not None else None
        if conn is None or session is None:
            return None, (0, 0)
        q = self.server.quotas.settings
        limits = (0, 0) if session.admin else (q.max_lobbies_per_address, q.max_lobbies_per_peer)
        return (address_key(client_host(conn.remote)), session.peer_id), limits

    async def _undo_created(self, batch: list[Action], rctx: RequestContext) -> None:
        """Remove again the lobby whose ``lobby.created`` notice is in ``batch`` (a persistent one from the
        database too: it was committed before): its creation is refused."""
        s = self.server
        for action in batch:
            if isinstance(action, Notice) and action.event == "lobby.created":
                lobby_id = str(action.fields["lobby_id"])
                if lobby_id in s.hub.lobbies:
                    s.apply(s.hub.close_lobby(lobby_id), rctx)
                if action.fields.get("persistent"):  # committed before the refusal goes out
                    await s.persistence.require().delete_lobby(lobby_id)

    async def carry_out(self, conn: Connection, actions: list[Action], rctx: RequestContext, *,
                        greeting: bool = False) -> None:
        """Carry out ``actions`` (and what the hub decides after each effect) in order; see the module docstring.

        In cluster mode a message that could not reach peers on other hubs makes the request end with
        ``cluster_unavailable`` after everything else was done (the request itself went through). While a
        ``hello`` (``greeting``) stores its session, what is sent to that session waits behind ``welcome`` and the
        messages buffered before it.
        """
        for action in actions:
            if isinstance(action, _AWAITED):
                break
        else:  # relayed messages: one batch, nothing to wait for
            error = await self._flush(actions, rctx, conn)
            if error is not None:
                raise error
            return
        queue = collections.deque(actions)
        batch: list[Action] = []
        partly: VoiceBotError | None = None
        place: _Place | None = None
        try:
            while queue:
                action = queue.popleft()
                if not isinstance(action, _AWAITED):
                    batch.append(action)
                    continue
                partly = await self._flush(batch, rctx, conn) or partly
                batch = []
                if isinstance(action, SaveSession):
                    if greeting:
                        queue.extend(await self._save_greeted(conn, action.peer_id))
                    else:
                        await self._save(conn, action.peer_id)
                    continue
                if isinstance(action, Admit):
                    place = await self._admit(conn, action)
                more = await self._effect(conn, action, rctx)
                if place is not None and not any(isinstance(a, _EFFECTS) for a in more):
                    place = None  # the join happened: the place is the member's now
                queue.extendleft(reversed(more))
            partly = await self._flush(batch, rctx, conn) or partly
        except BaseException:
            if place is not None and self.server.cluster is not None:
                self.server.cluster.lobbies.release(place.session, place.lobby_id)
            raise
        if partly is not None:
            raise partly

    async def _effect(self, conn: Connection, action: Effect, rctx: RequestContext) -> list[Action]:
        """Perform one effect and hand its outcome to the hub; on any failure the hub forgets the request."""
        s = self.server
        hub = s.hub
        try:
            if isinstance(action, HashPassword):
                digest = await s.passwords.hash(action.password, key=address_key(client_host(conn.remote)))
                self.check_lobby_quota(conn)  # again: hashing took time
                return hub.password_hashed(action.op, digest, trio.current_time())
            if isinstance(action, VerifyPassword):
                ok = await s.auth.check_lobby_password(conn, action.lobby_id, action.password_hash, action.password,
                                                       rctx)
                return hub.password_checked(action.op, ok, trio.current_time())
            if isinstance(action, Admit):
                return hub.admitted(action.op, trio.current_time())
            assert isinstance(action, Persist)
            await s.persistence.persist(hub, action.record)  # committed before anything after it is sent
            try:
                return hub.persisted(action.op, trio.current_time())
            except BaseException:
                session = hub.sessions.get(action.record.peer_id) if isinstance(action.record, Membership) else None
                if session is not None:  # stored as a member, yet the join failed after all (e.g. the lobby filled)
                    s.persistence.session_changed(hub, session)
                raise
        except BaseException:
            hub.abandon(action.op)
            raise

    async def _admit(self, conn: Connection, action: Admit) -> _Place:
        cluster = self.server.cluster
        assert cluster is not None  # the hub asks for places only in cluster mode (shared_membership)
        session = self.server.hub.require(conn.id)
        try:
            await cluster.lobbies.admit(session, action.lobby_id)
        except BaseException:
            self.server.hub.abandon(action.op)
            raise
        return _Place(session, action.lobby_id)

    async def _save_greeted(self, conn: Connection, peer_id: str) -> list[Action]:
        """Store a session a ``hello`` just bound to ``conn``; returns what was sent to it meanwhile (held back
        by the hub, bounded as in grace), to go out after ``welcome`` and the messages replayed after it."""
        hub = self.server.hub
        hold_delivery(hub, peer_id)
        try:
            await self._save(conn, peer_id)
        except BaseException:  # cancelled: what waited still goes out (the hello itself is abandoned)
            self.server.apply(release_delivery(hub, peer_id, conn.id))
            raise
        return release_delivery(hub, peer_id, conn.id)

    async def _save(self, conn: Connection, peer_id: str) -> None:
        session = self.server.hub.sessions.get(peer_id)
        if session is not None:
            await self.server.persistence.save_session(self.server.hub, session,
                                                       attrs.evolve(conn.ctx, component="persistence"))

    async def _flush(self, batch: list[Action], rctx: RequestContext,
                     conn: Connection | None = None) -> VoiceBotError | None:
        """Apply plain actions; in cluster mode a new lobby is registered in Redis (and counted against the
        lobby quotas of ``conn``'s address and peer) before ``lobby.created`` goes out, and the
        ``cluster_unavailable`` error is returned when a message could not reach other hubs."""
        if not batch:
            return None
        cluster = self.server.cluster
        if cluster is None:
            self.server.apply(batch, rctx)
            return None
        await self._register_created(conn, batch, rctx)
        dropped = cluster.dropped
        self.server.apply(batch, rctx)
        if cluster.dropped > dropped:
            from ..cluster import cluster_unavailable  # noqa: PLC0415 - loaded with cluster mode only

            return cluster_unavailable("delivered to peers on this hub only")
        return None

    async def _cluster_list(self, conn: Connection, req: protocol.LobbyList) -> list[Action]:
        """``lobby.list`` across the cluster (``partial: true`` when Redis is unreachable: this hub's only)."""
        cluster = self.server.cluster
        assert cluster is not None
        self.server.hub.require(conn.id)
        lobbies, next_cursor, partial = await cluster.lobbies.lobby_list(req.cursor, req.limit)
        reply: dict[str, Any] = {"type": "lobby.list", "lobbies": lobbies, "next_cursor": next_cursor}
        if partial:
            reply["partial"] = True
        if req.id is not None:
            reply["reply_to"] = req.id
        return [Send((conn.id,), reply)]
