"""Cluster mode, lobbies: register lobbies made here (counted against their creator's cluster-wide lobby quotas
by the same atomic ``create`` script), mirror lobbies made elsewhere, joins with the cap held in Redis (the atomic
``admit`` script), lobbies that end, and the cluster-wide ``lobby.list``."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import trio

from ..errors import LobbyError, VoiceBotError
from ..hub import Action, Lobby, Notice, Session
from ._link import member_json, ttl_seconds, unavailable
from ._mirror import add_remote, local_members, remove_remote

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["LobbyOps"]


class LobbyOps:
    """The lobby side of a :class:`~voicebot.cluster.Cluster` (``cluster.lobbies``)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._acks: dict[str, tuple[set[str], trio.Event]] = {}
        self._quiet: dict[tuple[str, str], float] = {}
        """(lobby id, peer id) → when another hub announced that peer as joining (see :meth:`_announce`)."""
        self._owners: dict[str, tuple[str, str]] = {}
        """Lobby id → (address key, peer id) of its creator, for the lobbies created here that this hub holds."""
        self.unfinished: dict[str, bool] = {}
        """Lobbies created here that Redis may still hold though they are gone here: ended while Redis was
        unreachable (False), or whose creation was undone (True: refused by a quota, or cut off by an outage,
        while a call under way may still register it). The next heartbeat that reaches Redis ends them there
        (:meth:`finish_unsynced`), so they stop counting against their creator."""

    def meta(self, lobby: Lobby) -> str:
        """The ``lobby:{id}`` value: the lobby's public settings and password hash (JSON), and for a lobby created
        here its creator (``owner``: address key and peer id, whose lobby quotas it counts against) and this hub."""
        meta: dict[str, Any] = {"id": lobby.id, "name": lobby.name, "private": lobby.private,
                                "password_hash": lobby.password_hash, "max_members": lobby.max_members,
                                "persistent": lobby.persistent, "created": lobby.created}
        owner = self._owners.get(lobby.id)
        if owner is not None:
            meta["owner"], meta["hub"] = list(owner), self.cluster.hub_id
        return json.dumps(meta, separators=(",", ":"))

    async def register_created(self, actions: list[Action], owner: tuple[str, str] | None,
                               limits: tuple[int, int] = (0, 0)) -> str | None:
        """Register the lobby a ``lobby.create`` made (its ``lobby.created`` notice is in ``actions``) and count
        it against ``owner``'s (address key, peer id) lobby quotas cluster-wide, ``limits`` being (per address,
        per peer; 0: unlimited), in one atomic step. Returns the quota that is full (``address``/``peer``:
        nothing was registered, the caller undoes the lobby), else None.

        While Redis is unreachable no outage may let a creator pass a quota: with a limit to count (non-zero)
        ``cluster_unavailable`` is raised (the caller undoes the lobby; its entry is ended in Redis by the first
        heartbeat that reaches it, in case the call got through), else (unlimited, or an admin) the lobby is
        created here and that heartbeat registers it."""
        for action in actions:
            if isinstance(action, Notice) and action.event == "lobby.created":
                lobby = self.cluster.hub.lobbies.get(action.fields["lobby_id"])
                if lobby is None:
                    continue
                if owner is not None:
                    self._remember_owner(lobby.id, owner)
                try:
                    result = await self.cluster.link.script("create", lobby.id, self.meta(lobby),
                                                            ttl_seconds(self.cluster.lobby_ttl), *limits)
                except VoiceBotError as exc:
                    self.cluster.available = False
                    if any(limits):
                        self._owners.pop(lobby.id, None)
                        self.unfinished[lobby.id] = True
                        raise unavailable("lobby quotas are counted cluster-wide") from exc
                    self.cluster.errors.handle(exc, self.cluster.error_context.request(None))
                    continue
                if result[0] == "quota":
                    self._owners.pop(lobby.id, None)
                    self.unfinished[lobby.id] = True  # a heartbeat under way may still re-assert it
                    return str(result[1])
        return None

    def _remember_owner(self, lobby_id: str, owner: tuple[str, str]) -> None:
        lobbies = self.cluster.hub.lobbies
        if len(self._owners) >= 2 * len(lobbies) + 64:  # forget lobbies this hub no longer holds
            self._owners = {lid: who for lid, who in self._owners.items() if lid in lobbies}
        self._owners[lobby_id] = owner

    async def finish(self, lobby_id: str) -> None:
        """This hub dropped ``lobby_id``, an ephemeral lobby created here that nobody joined in time: it ends
        cluster-wide (its quota places come back, ``lobby.list`` stops showing it) unless a member joined it
        through another hub meanwhile."""
        self._owners.pop(lobby_id, None)
        try:
            await self.cluster.link.script("finish", lobby_id, ttl_seconds(self.cluster.lobby_ttl), "")
        except VoiceBotError:
            self.unfinished.setdefault(lobby_id, False)
            raise

    async def finish_unsynced(self) -> None:
        """End in Redis the lobbies whose end could not be written there (see :attr:`unfinished`); raises
        ``cluster_unavailable`` if Redis is still unreachable (what is left is retried next time)."""
        for lobby_id in sorted(self.unfinished):
            if lobby_id not in self.cluster.hub.lobbies:
                await self.cluster.link.script("finish", lobby_id, ttl_seconds(self.cluster.lobby_ttl),
                                               "1" if self.unfinished[lobby_id] else "")
            del self.unfinished[lobby_id]

    async def ensure_lobby(self, lobby_id: str) -> None:
        """Before ``lobby.join``: mirror a lobby another hub created (``lobby_not_found`` if none has)."""
        if lobby_id in self.cluster.hub.lobbies:
            return
        key = self.cluster.link.lobby_keys(lobby_id)[0]
        raw = await self.cluster.link.call("get_lobby", lambda r: r.get(key))
        if raw is None or lobby_id in self.cluster.hub.lobbies:
            return  # unknown: the core answers lobby_not_found
        meta = json.loads(raw)
        lobby = Lobby(id=lobby_id, name=meta["name"], private=bool(meta["private"]),
                      password_hash=meta.get("password_hash"), max_members=int(meta["max_members"]),
                      persistent=bool(meta.get("persistent")), created=float(meta.get("created") or 0.0))
        self.cluster.hub.lobbies[lobby_id] = lobby
        self.cluster._mirrors.add(lobby_id)

    @contextlib.asynccontextmanager
    async def joining(self, lobby_id: str) -> AsyncIterator[None]:
        """Around a ``lobby.join``: mirror the lobby first if another hub made it; a mirror being joined is not
        dropped meanwhile (by a heartbeat), and one nobody here joined after all is dropped at the end. The hub
        asks for the cluster-wide place (:meth:`admit`) through an ``Admit`` action."""
        self.cluster.hold(lobby_id)
        try:
            await self.ensure_lobby(lobby_id)
            yield
        finally:
            self.cluster.unhold(lobby_id)

    async def admit(self, session: Session, lobby_id: str) -> None:
        """Take a place for ``session`` in ``lobby_id`` atomically in Redis (``lobby_full`` when none is left)."""
        lobby = self.cluster.hub.lobbies.get(lobby_id)
        if lobby is None or session.lobby_id == lobby_id:
            return
        args = [session.peer_id, member_json(session.peer_object(), self.cluster.hub_id), lobby_id,
                ttl_seconds(self.cluster.lobby_ttl), *self.cluster.sessions.stored(session)]
        version = self.cluster._versions.get(lobby_id, 0)
        result = await self.cluster.link.script("admit", *args)
        if result[0] == "missing":  # created here during an outage, or Redis restarted: publish it and retry
            await self._refresh(lobby)
            result = await self.cluster.link.script("admit", *args)
        if result[0] == "closed":
            raise LobbyError(f"no lobby {lobby_id!r}", code="lobby_not_found", field="lobby_id")
        if result[0] == "full":
            raise LobbyError(f"lobby is full ({lobby.max_members} members)", code="lobby_full", retryable=True)
        if result[0] != "ok":
            raise unavailable(f"lobby {lobby_id} vanished")
        # A member list read before a leave this hub heard meanwhile must not undo it; joins are still learnt.
        stale = self.cluster._versions.get(lobby_id, 0) != version
        self.cluster.sync_members(lobby, result[2:], exclude=session.peer_id, additions_only=stale)
        try:
            await self._announce(lobby_id, session, result[2:])
        except BaseException:
            self.release(session, lobby_id)
            raise

    async def _announce(self, lobby_id: str, session: Session, flat: list[str]) -> None:
        """Tell every other hub holding members of ``lobby_id`` that ``session`` is joining it, and wait (within
        half a call deadline) until each has added it to its mirror: every message those hubs handle from then
        on is forwarded to it too, so nothing sent after the joiner's ``lobby.joined`` misses it. Those hubs
        keep the joiner quiet (no ``peer.joined`` to their members) until this hub's ``peer.joined`` arrives.
        A hub that does not answer in time (lost or stalled) learns of the join from that ``peer.joined`` or
        its next heartbeat."""
        cluster = self.cluster
        hubs = {json.loads(flat[i + 1])["hub"] for i in range(0, len(flat), 2)} - {cluster.hub_id}
        if not hubs:
            return
        rid = secrets.token_hex(8)
        waiting, done = self._acks[rid] = (set(hubs), trio.Event())
        envelope = {"from": cluster.hub_id, "joining": lobby_id, "peer": session.peer_object(), "rid": rid}
        try:
            for hub_id in sorted(hubs):
                if not await cluster.send_to(hub_id, envelope):
                    waiting.discard(hub_id)  # that hub is lost
            if waiting:
                with trio.move_on_after(cluster.link.call_timeout / 2):
                    await done.wait()
        finally:
            self._acks.pop(rid, None)

    def on_control(self, envelope: dict[str, Any]) -> bool:
        """Handle ``joining``/``joining_ack`` from another hub (see :meth:`_announce`); False for others."""
        cluster = self.cluster
        if "joining_ack" in envelope:
            entry = self._acks.get(str(envelope["joining_ack"]))
            if entry is not None:
                entry[0].discard(str(envelope["from"]))
                if not entry[0]:
                    entry[1].set()
            return True
        if "joining" not in envelope:
            return False
        origin, peer = str(envelope["from"]), envelope["peer"]
        lobby = cluster.hub.lobbies.get(str(envelope["joining"]))
        if lobby is not None and peer["peer_id"] not in lobby.members and local_members(cluster.hub, lobby.members):
            add_remote(cluster.hub, lobby, peer["peer_id"], peer, origin)
            cluster.bump(lobby.id)
            self._quiet[(lobby.id, peer["peer_id"])] = trio.current_time()
        # Through the publisher, after anything this hub queued before it knew of the joiner.
        cluster.enqueue("send", (origin, {"from": cluster.hub_id, "joining_ack": envelope["rid"]}))
        return True

    def announced(self, lobby_id: str, peer_id: str) -> bool:
        """``peer.joined`` of ``peer_id`` arrived: True when it was kept quiet until now (tell the members)."""
        return self._quiet.pop((lobby_id, peer_id), None) is not None

    def quiet(self, lobby: Lobby, now: float) -> frozenset[str]:
        """Members of ``lobby`` announced as joining whose ``peer.joined`` has not arrived yet. After a
        heartbeat without it they are dropped from the mirror silently (a reconcile then adds those that did
        join, telling the members; a join that failed is never heard of)."""
        out = set()
        for key, since in list(self._quiet.items()):
            if now - since > self.cluster.heartbeat:
                del self._quiet[key]
                mirror = self.cluster.hub.lobbies.get(key[0])
                if mirror is not None:
                    remove_remote(self.cluster.hub, mirror, key[1])
            elif key[0] == lobby.id:
                out.add(key[1])
        return frozenset(out)

    def release(self, session: Session, lobby_id: str) -> None:
        """Give back a place taken by :meth:`admit` when the join failed after all."""
        self.cluster.enqueue("leave", (lobby_id, session.peer_id))

    async def lobby_list(
        self, cursor: str | None, limit: int,
    ) -> tuple[list[dict[str, Any]], str | None, bool]:
        """One page of the whole cluster's public lobbies by id (as ``lobby.list`` pages a single hub) and the
        next cursor (lobbies that ended are not listed); ``(this hub's page, cursor, True)`` while Redis is
        unreachable."""
        try:
            raw = await self.cluster.link.script("list", cursor or "", limit, ttl_seconds(self.cluster.lobby_ttl))
        except VoiceBotError:
            self.cluster.available = False
            ids = sorted(lid for lid, lb in self.cluster.hub.lobbies.items() if not lb.private and lid > (cursor or ""))
            local = [self.cluster.hub.lobbies[lid].public() for lid in ids[:limit]]
            return local, (ids[limit - 1] if len(ids) > limit else None), True
        page = []
        for i in range(0, len(raw), 3):
            meta = json.loads(raw[i + 1])
            page.append({"id": raw[i], "name": meta["name"], "private": bool(meta["private"]),
                         "has_password": meta.get("password_hash") is not None, "members": int(raw[i + 2]),
                         "max_members": int(meta["max_members"]), "persistent": bool(meta.get("persistent"))})
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1]["id"] if more else None), False

    def own_members(self, lobby: Lobby) -> list[str]:
        """(peer id, member JSON, …) of the members of ``lobby`` whose socket is on this hub."""
        flat: list[str] = []
        for pid in lobby.members:
            session = self.cluster.hub.sessions.get(pid)
            if session is not None and session.home is None:
                flat += [pid, member_json(session.peer_object(), self.cluster.hub_id)]
        return flat

    async def _refresh(self, lobby: Lobby) -> list[str]:
        result: list[str] = await self.cluster.link.script("refresh", lobby.id, self.meta(lobby),
                                                   ttl_seconds(self.cluster.lobby_ttl), *self.own_members(lobby))
        return result
