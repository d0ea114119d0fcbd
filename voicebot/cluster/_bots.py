"""Cluster mode, bots: ``bot.add``/``bot.remove`` served by a worker registered with any hub.

Every heartbeat each hub stores the free capacity of its workers per bot (``bots`` hash, see :mod:`._scripts`);
``bot.list`` lists the bots of every hub's workers. The bot quotas (``--max-bots-per-lobby``,
``--max-bots-per-peer``) are counted in Redis by one atomic script per start, so they hold cluster-wide, and a
join ticket granted for a bot is stored there (its hash) so the bot may join through any hub.
A ``bot.add`` the requester's hub cannot serve (no local worker offers the bot, or none has room) goes to the
hub with the most room for it (``bot_add`` in its inbox); that hub starts the bot on one of its workers as if
asked locally and answers ``bot_reply``. A ``bot.remove`` of a bot whose job another hub holds goes to the hub
holding the bot's session the same way. The requester's hub waits for the answer within a deadline.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ..errors import Category, VoiceBotError
from ..hub import token_hash
from ._link import PREFIX, ttl_seconds, unavailable

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["BotRelay", "error_from_wire", "error_to_wire"]

RemoteHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Serves a ``bot_add``/``bot_remove`` from another hub; returns the reply (:func:`error_to_wire` on failure)."""


def error_to_wire(exc: VoiceBotError) -> dict[str, Any]:
    """A failure to send back to the requester's hub."""
    return {"ok": False, "error": exc.to_wire()}


def error_from_wire(reply: dict[str, Any]) -> VoiceBotError:
    """The error another hub answered (same code, category, retryability)."""
    wire = reply["error"]
    return VoiceBotError(str(wire["message"]), code=str(wire["code"]), category=Category(wire["category"]),
                         retryable=bool(wire["retryable"]), retry_after=wire.get("retry_after"),
                         field=wire.get("field"))


class BotRelay:
    """The bot side of a :class:`~voicebot.cluster.Cluster` (``cluster.bots``); the bot hub plugs in
    :attr:`offers`, :attr:`add_here` and :attr:`remove_here`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.offers: Callable[[], dict[str, list[Any]]] = dict
        """``{bot: [free capacity, description]}`` of this hub's workers (stored every heartbeat)."""
        self.add_here: RemoteHandler | None = None
        """Runs a ``bot.add`` another hub sent here."""
        self.remove_here: RemoteHandler | None = None
        """Runs a ``bot.remove`` another hub sent here."""
        self.jobs: Callable[[], list[list[str]]] = list
        """``[[job id, lobby id, owner peer id], …]`` of the bots this hub's workers start or run (their quota
        entries, re-asserted every heartbeat)."""
        self._waiting: dict[str, tuple[trio.Event, list[dict[str, Any]]]] = {}

    # -- cluster-wide quotas and tickets --------------------------------------------------------------
    async def take_quota(self, job_id: str, lobby_id: str, owner: str, per_lobby: int, per_peer: int) -> str:
        """Count job ``job_id`` against the cluster-wide bot quotas of ``lobby_id`` and ``owner`` in one atomic
        step: ``ok``, or ``lobby``/``peer`` (that quota is full; nothing taken). ``cluster_unavailable``
        without Redis."""
        result: str = await self.cluster.link.script("botquota", self.cluster.hub_id, job_id, lobby_id, owner,
                                                     per_lobby, per_peer)
        return result

    def free_quota(self, job_id: str, lobby_id: str, owner: str) -> None:
        """Job ``job_id`` ended (or never started): give its quota places back (queued; should the call fail,
        the next heartbeat that reaches Redis drops the entry anyway)."""
        self.cluster.enqueue("botfree", (job_id, lobby_id, owner))

    async def freed(self, job_id: str, lobby_id: str, owner: str) -> None:
        """The publisher's part of :meth:`free_quota`."""
        await self.cluster.link.script("botfree", self.cluster.hub_id, job_id, lobby_id, owner)

    async def store_ticket(self, ticket: str, lobby_id: str, ttl: float) -> None:
        """Make join ticket ``ticket`` for ``lobby_id`` valid on every hub for ``ttl`` seconds (its hash only)."""
        key, seconds = f"{PREFIX}ticket:{token_hash(ticket)}", ttl_seconds(ttl)
        await self.cluster.link.call("set_ticket", lambda r: r.set(key, lobby_id, ex=seconds))

    async def learn_ticket(self, ticket: str, lobby_id: str) -> None:
        """Before ``lobby.join {ticket}``: a ticket for ``lobby_id`` another hub granted is accepted here too
        (until it expires there); nothing when this hub granted it or nobody did (the core then refuses)."""
        hub, now = self.cluster.hub, trio.current_time()
        if hub.tickets.admits(ticket, lobby_id, now):
            return
        found = await self.find_ticket(ticket)
        if found is not None and found[0] == lobby_id:
            hub.tickets.accept(ticket, lobby_id, now + found[1])

    async def find_ticket(self, ticket: str) -> tuple[str, float] | None:
        """The lobby id and remaining seconds of a join ticket another hub granted; None when there is none."""
        key = f"{PREFIX}ticket:{token_hash(ticket)}"

        async def lookup(r: Any) -> tuple[Any, Any]:
            return await r.get(key), await r.pttl(key)

        lobby_id, pttl = await self.cluster.link.call("get_ticket", lookup)
        if lobby_id is None or pttl is None or int(pttl) <= 0:
            return None
        return str(lobby_id), int(pttl) / 1000

    async def add(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Start ``request["bot"]`` on another hub's worker: the reply (``ok``, ``peer_id``, ``job_id``); None
        when no other hub offers that bot with room. Errors come back as the other hub raised them."""
        hubs: list[str] = await self.cluster.link.script("offers", request["bot"], self.cluster.hub_id)
        last: dict[str, Any] | None = None
        for hub_id in hubs:
            reply = await self._call(hub_id, "bot_add", request, timeout)
            if reply is None:
                continue  # that hub is gone
            if reply.get("ok") or not reply["error"]["retryable"]:
                return reply
            last = reply
        return last

    async def catalog(self) -> dict[str, tuple[str, bool]]:
        """The bots other hubs' workers run: name → (description, whether one has room now)."""
        flat: list[str] = await self.cluster.link.script("catalog", self.cluster.hub_id)
        out: dict[str, tuple[str, bool]] = {}
        for i in range(1, len(flat), 2):
            for name, (free, description) in json.loads(flat[i]).items():
                previous = out.get(name)
                out[name] = (str(description), int(free) > 0 or (previous is not None and previous[1]))
        return out

    async def remove(self, peer_id: str, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """``bot.remove`` of ``peer_id`` on the hub holding its session; None when no hub does."""
        ghost = self.cluster.hub.sessions.get(peer_id)
        home = ghost.home if ghost is not None else None
        if home is None:
            key = f"{PREFIX}sess:{peer_id}"
            raw = await self.cluster.link.call("get_session", lambda r: r.get(key))
            home = str(json.loads(raw)["hub"]) if raw is not None else None
        if home is None or home == self.cluster.hub_id:
            return None
        return await self._call(home, "bot_remove", request, timeout)

    async def _call(self, hub_id: str, kind: str, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        rid = secrets.token_hex(8)
        event, box = self._waiting[rid] = (trio.Event(), [])
        try:
            if not await self.cluster.send_to(hub_id, {"from": self.cluster.hub_id, kind: request, "rid": rid}):
                return None
            with trio.move_on_after(timeout):
                await event.wait()
            if not box:
                raise unavailable(f"hub {hub_id} did not answer {kind} in time")
            return box[0]
        finally:
            self._waiting.pop(rid, None)

    def on_control(self, envelope: dict[str, Any], nursery: trio.Nursery | None) -> bool:
        """Handle ``bot_add``/``bot_remove``/``bot_reply`` from another hub; False for other messages."""
        if "bot_reply" in envelope:
            waiting = self._waiting.get(str(envelope["bot_reply"]))
            if waiting is not None:
                waiting[1].append(envelope["reply"])
                waiting[0].set()
            return True
        for kind, handler in (("bot_add", self.add_here), ("bot_remove", self.remove_here)):
            if kind in envelope:
                if nursery is not None:
                    nursery.start_soon(self._serve, handler, envelope[kind], str(envelope["from"]),
                                       str(envelope["rid"]))
                return True
        return False

    async def _serve(self, handler: RemoteHandler | None, request: dict[str, Any], origin: str, rid: str) -> None:
        if handler is None:
            reply = error_to_wire(VoiceBotError("this hub runs no bots", code="bot_unknown",
                                                category=Category.VALIDATION))
        else:
            try:
                reply = await handler(request)
            except VoiceBotError as exc:
                reply = error_to_wire(exc)
        try:
            await self.cluster.send_to(origin, {"from": self.cluster.hub_id, "bot_reply": rid, "reply": reply})
        except VoiceBotError as exc:  # Redis went away: the requester's hub times out and says so
            self.cluster.errors.handle(exc, self.cluster.error_context)
