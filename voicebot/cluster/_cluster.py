"""Cluster mode: several hubs share lobbies through Redis; each hub mirrors the members it does not hold.

The hub core stays single-hub: a lobby with members on other hubs is a local :class:`~voicebot.hub.Lobby`
whose remote members are :class:`~voicebot.hub.Session` objects with ``home`` set to their hub's id. The core's
rules (membership, signal targets, broadcast) then just work, and messages for remote members come out as
:class:`~voicebot.hub.Forward` actions, which this layer appends to the home hub's inbox (a Redis stream).

Order: one task publishes this hub's forwards in order (batched per target hub, :mod:`._delivery`) and each hub
reads its inbox in order, so per sender → receiver order holds. Membership: Redis is the authority
(``members:{lobby}``; joins go through an atomic admit script, so caps hold cluster-wide, and a joiner's hub
waits until every hub holding members has it in its mirror before the joiner hears ``lobby.joined``); every
``heartbeat`` each hub refreshes its keys, re-asserts its own
lobbies, members and sessions in one script call (after an outage or a Redis restart too) and reconciles each
mirror with Redis, telling local members ``peer.joined``/``peer.left`` for differences (a dead hub's peers leave
with reason ``disconnected`` once its key and their sessions expire).

The rest is split by domain: :mod:`._lobbies` (joins, caps, ``lobby.list``), :mod:`._sessions` (resume on any
hub, messages kept for a lost hub's peers), :mod:`._admin` (kick, close), :mod:`._bots` (bots on another hub's
workers), :mod:`._scripts` (the Lua scripts and the key layout).
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import trio

from ..errors import ErrorContext, ErrorHandler, VoiceBotError
from ..hub import Action, Forward, Hub, Lobby, Notice, SessionGone
from ..protocol import Request, Signal
from ..resilience import BreakerRegistry, CircuitState
from ._admin import AdminOps
from ._bots import BotRelay
from ._delivery import Delivery
from ._link import RedisLink, sleep_or, ttl_seconds, unavailable
from ._lobbies import LobbyOps
from ._mirror import local_members, reconcile
from ._sessions import SessionShare
from ._writethrough import WriteThrough

__all__ = ["Cluster"]

log = logging.getLogger("voicebot.cluster")

SWEEP = 100
"""Lobbies of lost hubs each heartbeat looks at, at most (see :mod:`._lobby_scripts`): a lost hub's unjoined
lobbies end within ``ceil(n / (SWEEP × live hubs))`` heartbeats of its key expiring."""


class Cluster:
    """This hub's membership in a cluster (``--cluster redis://…``).

    ``apply`` carries out hub actions (the server's :meth:`~voicebot.server.Server.apply`). Run :meth:`run` in
    the server's nursery; the server calls :attr:`lobbies` (``joining`` around ``lobby.join``, ``admit`` and
    ``release`` for the hub's ``Admit``, ``register_created`` on ``lobby.create``, ``lobby_list`` on
    ``lobby.list``), ``sessions.adopt`` before a ``hello {resume}`` with
    a token it does not know, :attr:`admin` for ``admin.kick``/``admin.close_lobby`` of other hubs' peers and
    lobbies, :meth:`announce_name` after ``name.register``, and :meth:`forward` for each
    :class:`~voicebot.hub.Forward` action, and feeds notices to :meth:`on_notice`; the bot hub plugs into
    :attr:`bots`. ``on_name`` learns a name another hub registered.
    """

    def __init__(
        self, url: str, hub: Hub, apply: Callable[[list[Action]], None], errors: ErrorHandler,
        breakers: BreakerRegistry, *, heartbeat: float = 1.0, hub_ttl: float = 5.0, call_timeout: float = 2.0,
        lobby_ttl: float = 300.0, on_name: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.hub_id = secrets.token_hex(6)
        self.hub = hub
        self.apply = apply
        self.errors = errors
        self.link = RedisLink(url, breakers, call_timeout=call_timeout)
        self.heartbeat = heartbeat
        self.hub_ttl = hub_ttl
        self.lobby_ttl = lobby_ttl
        self.available = False
        """True after a successful heartbeat, False after any failed Redis call (see ``/readyz``)."""
        self.dropped = 0
        """Messages for peers on other hubs that could not be sent (cluster unavailable or outbox full)."""
        self.published = 0
        self.unreceived = 0
        """Messages for a hub that was gone, none of whose receivers' sessions could be resumed any more."""
        self.received = 0
        self._mirrors: set[str] = set()
        self._versions: dict[str, int] = {}
        self._joining: collections.Counter[str] = collections.Counter()
        self.unsynced_leaves: set[tuple[str, str]] = set()
        """Leaves that failed to reach Redis (retried by the next heartbeat that reaches it)."""
        self._settle_until = 0.0
        self.resync_until = 0.0
        """Until when (Trio clock) other hubs may still be re-asserting their state after an outage of this hub's
        Redis (0 when this hub never saw one): a resume token found nowhere meanwhile may just not be back yet."""
        self._ever_available = False
        self._failures_seen = 0
        self._wake = trio.Event()
        self._ctx = ErrorContext(errors.ids.new(), component="cluster")
        self._nursery: trio.Nursery | None = None
        self.on_name = on_name
        """Learns a name another hub registered (the server reads it from the shared store)."""
        self.lobbies = LobbyOps(self)
        """Lobbies shared with the other hubs (mirrors, joins under the cluster-wide cap, ``lobby.list``)."""
        self.admin = AdminOps(self)
        """``admin.kick``/``admin.close_lobby`` for peers and lobbies on other hubs."""
        self.bots = BotRelay(self)
        """``bot.add``/``bot.remove`` served by workers registered with other hubs."""
        self.sessions = SessionShare(self)
        """Sessions shared with the other hubs (resume on any hub, messages kept for a lost hub's peers)."""
        self.delivery = Delivery(self)
        """This hub's publisher and inbox reader (forwards batched per target hub, control messages)."""
        self.copies = WriteThrough(self)
        """Copies of what this hub buffers for peers in grace, and trims of its inbox once that is safe."""

    # -- running ------------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat/reconcile, publish forwards and read this hub's inbox until cancelled."""
        async with AsyncExitStack() as stack:
            await self.link.open(stack, reader_name=f"voicebot-reader-{self.hub_id}")
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.delivery.reader)
                nursery.start_soon(self.copies.trimmer)
                with trio.move_on_after(self.link.call_timeout * 2):
                    await self.delivery.subscribed.wait()
                    await self._tick()  # be ready (or say why not) before listening
                nursery.start_soon(self._heartbeats)
                nursery.start_soon(self.delivery.publisher)
                task_status.started()

    async def _heartbeats(self) -> None:
        while True:
            await sleep_or(self._wake, self.heartbeat)
            self._wake = trio.Event()
            await self._tick()

    async def _tick(self) -> None:
        """One heartbeat: a single ``tick`` script call refreshes this hub's key, its sessions and all its
        lobbies and members, keeps its inbox and returns every lobby's live members to reconcile with."""
        failures = self.link.failures
        try:
            for lobby_id, peer_id in sorted(self.unsynced_leaves):
                session = self.hub.sessions.get(peer_id)
                if session is None or session.lobby_id != lobby_id:  # not back in that lobby meanwhile
                    await self.leave(lobby_id, peer_id)
                self.unsynced_leaves.discard((lobby_id, peer_id))
            await self.lobbies.finish_unsynced()
            self.copies.backstop()
            self.sessions.expire_early()
            lobbies = [lobby for lobby in list(self.hub.lobbies.values()) if not self._drop_if_unused(lobby)]
            versions = [self._versions.get(lobby.id, 0) for lobby in lobbies]
            ttl = ttl_seconds(self.lobby_ttl)
            payload = {"lobbies": [[lobby.id, self.lobbies.meta(lobby), ttl, self.lobbies.own_members(lobby)]
                                   for lobby in lobbies],
                       "sessions": self.sessions.held(trio.current_time()), "bots": self.bots.offers(),
                       "jobs": self.bots.jobs()}
            result = await self.link.script("tick", self.hub_id, ttl_seconds(self.hub_ttl),
                                            json.dumps(payload, separators=(",", ":")), self.delivery.inbox_ttl_ms,
                                            ttl, SWEEP)
            # After an outage (maybe a Redis restart), seen by a heartbeat or by any other call that failed
            # since the last heartbeat: let every hub re-assert first.
            if not self.available or self.link.failures != self._failures_seen:
                self._settle_until = trio.current_time() + self.hub_ttl
                if self._ever_available:
                    self.resync_until = self._settle_until
            self.delivery.inbox_overflow = int(result[0])
            self._ever_available = True
            self._failures_seen = failures
            for lobby, version, live in zip(lobbies, versions, result[1:], strict=True):
                if self.hub.lobbies.get(lobby.id) is lobby and self._versions.get(lobby.id, 0) == version:
                    self._sync(lobby, live)
        except VoiceBotError as exc:
            if self.available:
                log.warning("cluster unavailable: %s", exc.message)
            self.available = False
            return
        if not self.available:
            log.info("cluster available (hub %s)", self.hub_id)
        self.available = True

    def settled(self) -> bool:
        """Whether Redis' shared state can be taken as complete: available, no Redis call failed since the last
        heartbeat, and not within a heartbeat timeout after an outage (Redis may have restarted empty; every hub
        re-asserts its state at its next heartbeat)."""
        return (self.available and self.link.failures == self._failures_seen
                and trio.current_time() >= self.resync_until)

    def status(self) -> str:
        """``available``/``unavailable`` (the breaker being open counts as unavailable)."""
        if self.available and self.link.breaker.state not in (CircuitState.OPEN, CircuitState.FORCED_OPEN):
            return "available"
        return "unavailable"

    def snapshot(self) -> dict[str, Any]:
        """For ``admin.stats``: this hub's id, state and message counters."""
        return {"hub_id": self.hub_id, "status": self.status(), "published": self.published,
                "batches": self.delivery.batches, "received": self.received, "dropped": self.dropped,
                "unreceived": self.unreceived, "read_failures": self.delivery.read_failures,
                "redis_failures": self.link.failures,
                "inbox_overflow": self.delivery.inbox_overflow, **self.copies.snapshot(),
                "breaker": str(self.link.breaker.state), **self.sessions.snapshot()}

    def hold(self, lobby_id: str) -> None:
        """Keep the mirror of ``lobby_id`` while a join or takeover into it is under way (see :meth:`unhold`)."""
        self._joining[lobby_id] += 1

    def unhold(self, lobby_id: str) -> None:
        """End a :meth:`hold`; a mirror nobody here is in any more is then dropped."""
        self._joining[lobby_id] -= 1
        if not self._joining[lobby_id]:
            del self._joining[lobby_id]
            lobby = self.hub.lobbies.get(lobby_id)
            if lobby is not None and lobby_id in self._mirrors:
                self._drop_if_unused(lobby)

    def sync_members(self, lobby: Lobby, flat: list[str], exclude: str | None = None, *,
                     additions_only: bool = False) -> None:
        """Reconcile the mirror of ``lobby`` with Redis' members ``flat`` (telling local members, not
        ``exclude``, what changed); ``additions_only`` when ``flat`` may be older than what this hub heard
        since (a leave heard meanwhile must not be undone, a join it did not hear of yet is still learnt)."""
        self._sync(lobby, flat, exclude=exclude, additions_only=additions_only)

    @property
    def error_context(self) -> ErrorContext:
        """The context cluster errors are reported under."""
        return self._ctx

    async def announce_name(self, name: str) -> None:
        """Tell every hub that ``name`` was just registered here (best effort: hubs that miss it learn it at
        their next start; the store's unique key decides races either way)."""
        try:
            await self.send_to("*", {"from": self.hub_id, "name": name})
        except VoiceBotError as exc:
            self.errors.handle(exc, self._ctx.request(None))

    def forget_mirror(self, lobby_id: str) -> None:
        """Stop treating ``lobby_id`` as a mirror (it is being closed)."""
        self._mirrors.discard(lobby_id)
        self._versions.pop(lobby_id, None)

    def drop_if_unused(self, lobby: Lobby) -> bool:
        """Forget the mirror of ``lobby`` when no peer of this hub is in it any more (True if dropped)."""
        return self._drop_if_unused(lobby)

    def _sync(self, lobby: Lobby, flat: list[str], exclude: str | None = None, *, additions_only: bool = False) -> None:
        """Reconcile the mirror with Redis' members (``flat``) and tell local members what changed."""
        now = trio.current_time()
        settling = now < self._settle_until  # a member may be absent only because its hub is re-asserting
        # Members another hub announced as joining are kept quietly until their peer.joined arrives.
        keep = self.sessions.adopting | self.lobbies.quiet(lobby, now)
        actions = reconcile(self.hub, lobby, flat, self.hub_id, now, exclude=exclude,
                            keep_missing=settling or additions_only, keep=keep)
        if actions:
            self.apply(actions)

    def _drop_if_unused(self, lobby: Lobby) -> bool:
        """Forget a mirror no local peer is in any more (its remote members stay in Redis)."""
        if lobby.id in self._joining or local_members(self.hub, lobby.members):
            return False
        if lobby.id not in self._mirrors and not lobby.members:
            return False  # a lobby created here, waiting for its first member
        for pid in list(lobby.members):
            ghost = self.hub.sessions.get(pid)
            if ghost is not None and ghost.home is not None and ghost.lobby_id == lobby.id:
                self.hub.sessions.pop(pid, None)
        lobby.members.clear()
        lobby.pending_offers.clear()
        self._mirrors.discard(lobby.id)
        if not lobby.persistent:
            self.hub.lobbies.pop(lobby.id, None)
            self._versions.pop(lobby.id, None)
        return True

    @staticmethod
    def forget_first(actions: list[Action]) -> list[Action]:
        """``actions`` with the ends of sessions (:class:`SessionGone`) first, the rest in their order: a session
        ended for good is forgotten in Redis (queued work, carried out in order) before what the same decision
        sends to other hubs, so a peer told ``peer.left`` can no longer resume the ended session on any hub."""
        if len(actions) < 2 or not any(isinstance(a, SessionGone) for a in actions):
            return actions
        return sorted(actions, key=lambda a: not isinstance(a, SessionGone))

    def on_notice(self, action: Notice | SessionGone) -> None:
        """Hub notices: a local member left a lobby → free its place in Redis and maybe drop the mirror; a
        lobby created here expired unjoined → end it in Redis; a session started, resumed or disconnected →
        store it; a session ended → forget it."""
        if isinstance(action, SessionGone):
            self.copies.resumed_here(action.peer_id)
            self.enqueue("forget", action.peer_id)
            return
        if action.event in ("session.started", "session.resumed"):
            self.copies.resumed_here(action.fields["peer_id"])
        if action.event in ("session.started", "session.resumed", "session.disconnected", "lobby.joined",
                            "lobby.left"):  # the stored session names its lobby
            self.enqueue("save", action.fields["peer_id"])
        if action.event == "lobby.deleted" and action.fields["reason"] == "expired":  # created here, unjoined
            self.enqueue("finish", action.fields["lobby_id"])
        if action.event == "lobby.left":
            lobby_id, peer_id = action.fields["lobby_id"], action.fields["peer_id"]
            self.enqueue("leave", (lobby_id, peer_id))
            lobby = self.hub.lobbies.get(lobby_id)
            if lobby is not None:
                self._drop_if_unused(lobby)

    # -- delivery -----------------------------------------------------------------------------------
    def forward(self, action: Forward) -> bool:
        """Queue ``action`` for its home hub; False (counted in ``dropped``) when that cannot happen now."""
        if self.status() != "available":
            self.dropped += 1
            return False
        return self.enqueue("publish", action)

    def can_reach(self, peer_id: str) -> bool:
        """False when ``peer_id`` is on another hub and the cluster is unavailable."""
        session = self.hub.sessions.get(peer_id)
        return session is None or session.home is None or self.status() == "available"

    def check_request(self, req: Request) -> None:
        """Refuse (``cluster_unavailable``) a ``signal`` to a peer on another hub while Redis is unreachable,
        before the core records it (glare bookkeeping, ``signal.sent``)."""
        if isinstance(req, Signal) and not self.can_reach(req.to):
            raise unavailable(f"peer {req.to} is on another hub")

    def enqueue(self, kind: str, item: Any) -> bool:
        """Queue work for the publisher task (in order with this hub's messages)."""
        return self.delivery.enqueue(kind, item)

    async def send_to(self, hub_id: str, envelope: dict[str, Any]) -> int:
        """Append ``envelope`` to hub ``hub_id``'s inbox now; 1, or 0 when that hub is gone."""
        return await self.delivery.send_to(hub_id, envelope)

    async def flush(self) -> None:
        """Wait (within a call deadline) until what this hub queued for Redis so far has been carried out."""
        await self.delivery.flush()

    async def leave(self, lobby_id: str, peer_id: str) -> None:
        """Free ``peer_id``'s place in ``lobby_id`` in Redis now."""
        await self.link.script("leave", peer_id, lobby_id, ttl_seconds(self.lobby_ttl))

    def bump(self, lobby_id: str) -> None:
        """The mirror of ``lobby_id`` changed: a member list read from Redis before now is stale."""
        self._versions[lobby_id] = self._versions.get(lobby_id, 0) + 1

    @property
    def nursery(self) -> trio.Nursery | None:
        """The nursery of :meth:`run` (None before it starts)."""
        return self._nursery

    def _receive(self, envelope: dict[str, Any]) -> None:
        self.delivery.receive(envelope)
