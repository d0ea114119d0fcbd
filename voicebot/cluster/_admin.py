"""Cluster mode, admin requests that reach any hub: ``admin.kick`` and ``admin.close_lobby``.

The hub an admin talks to finds where the target lives (a peer's hub from its mirror or its stored session; a
lobby's hubs from its members in Redis) and tells those hubs through their inboxes (``kick``/``close``); each
carries the request out on its own peers exactly as a single hub does. A kick whose target's hub was lost ends
the stored session (it can no longer be resumed) and the lobby hears the peer leave with reason ``kicked``.

A kicked peer's hub forgets its stored session in Redis before anyone hears of the kick (:meth:`AdminOps.kick_here`):
a kicked client that tried to resume at once on another hub would otherwise find the session still there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio

from ..errors import LobbyError, VoiceBotError
from ._link import PREFIX
from ._mirror import remove_remote

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["AdminOps"]

#: Seconds no hub may re-assert a lobby an admin closed (longer than any heartbeat in flight).
CLOSED_TTL = 60


class AdminOps:
    """The admin side of a :class:`~voicebot.cluster.Cluster` (``cluster.admin``)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def kick(self, peer_id: str) -> None:
        """``admin.kick`` of a peer whose socket is not on this hub (``peer_not_found`` when no hub has it)."""
        cluster, hub = self.cluster, self.cluster.hub
        ghost = hub.sessions.get(peer_id)
        home = ghost.home if ghost is not None else None
        if home is None:
            key = f"{PREFIX}sess:{peer_id}"
            raw = await cluster.link.call("get_session", lambda r: r.get(key))
            if raw is None:
                raise LobbyError(f"no peer {peer_id!r}", code="peer_not_found", field="peer_id")
            home = str(json.loads(raw)["hub"])
        if home != cluster.hub_id and await cluster.send_to(home, {"from": cluster.hub_id, "kick": peer_id}):
            return
        # Its hub is lost (or the record is stale): end the stored session here.
        if not await cluster.link.script("end", peer_id) and ghost is None:
            raise LobbyError(f"no peer {peer_id!r}", code="peer_not_found", field="peer_id")
        if ghost is not None and ghost.home is not None:
            cluster.apply(hub.end_session(ghost, "kicked", trio.current_time()))

    async def kick_here(self, peer_id: str) -> None:
        """``admin.kick`` of a peer whose socket is on this hub (``peer_not_found`` when it has no session here):
        its session ends in the hub core at once, and in Redis (after what this hub queued before, such as a save
        of that session) before the hub's decision is carried out — the kicked client, its lobby and the admin
        are told only then. When Redis cannot be reached they are told anyway (the forget stays queued)."""
        cluster = self.cluster
        actions = cluster.hub.kick(peer_id, trio.current_time())
        try:
            await cluster.flush()
            await cluster.sessions.forget(peer_id)
        except VoiceBotError as exc:
            cluster.errors.handle(exc, cluster.error_context.request(None))
        finally:
            cluster.apply(actions)

    async def _kicked_by_another_hub(self, peer_id: str) -> None:
        session = self.cluster.hub.sessions.get(peer_id)
        if session is not None and session.home is None:  # still here (the core is asked before any await)
            await self.kick_here(peer_id)

    async def close_lobby(self, lobby_id: str) -> bool:
        """``admin.close_lobby`` on every hub holding ``lobby_id`` (``lobby_not_found`` when none does);
        returns whether it was persistent (the caller deletes it from the store)."""
        cluster, hub = self.cluster, self.cluster.hub
        result: list[Any] = await cluster.link.script("close", lobby_id, CLOSED_TTL)
        lobby = hub.lobbies.get(lobby_id)
        if not result and lobby is None:
            raise LobbyError(f"no lobby {lobby_id!r}", code="lobby_not_found", field="lobby_id")
        persistent = lobby.persistent if lobby is not None else bool(json.loads(result[0]).get("persistent"))
        self.close_here(lobby_id)
        for other in result[1:]:
            if other != cluster.hub_id:
                await cluster.send_to(str(other), {"from": cluster.hub_id, "close": lobby_id})
        return persistent

    def close_here(self, lobby_id: str) -> None:
        """Close ``lobby_id`` on this hub: its members here get ``lobby.left`` (``closed``); remote members are
        told by their own hubs."""
        cluster, hub = self.cluster, self.cluster.hub
        lobby = hub.lobbies.get(lobby_id)
        if lobby is None:
            return
        for pid in list(lobby.members):
            remove_remote(hub, lobby, pid)
        cluster.forget_mirror(lobby_id)
        cluster.apply(hub.close_lobby(lobby_id))

    def on_control(self, envelope: dict[str, Any]) -> bool:
        """Handle ``kick``/``close`` from another hub; False for other messages."""
        if "kick" in envelope:
            nursery = self.cluster.nursery
            if nursery is not None:
                nursery.start_soon(self._kicked_by_another_hub, str(envelope["kick"]))
            return True
        if "close" in envelope:
            self.close_here(str(envelope["close"]))
            return True
        return False
