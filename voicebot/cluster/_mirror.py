"""Sans-IO rules of a hub's mirror of remote members (peers whose socket is on another hub).

A remote member is a :class:`~voicebot.hub.Session` with ``home`` set, listed in the local lobby's members; the
hub core then treats it like any member and turns messages for it into ``Forward`` actions. These functions
add/remove remote members and reconcile a lobby with Redis' member list, returning the hub actions that tell
this hub's own members (``peer.joined``/``peer.left``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from ..hub import Action, Hub, Lobby, Session

__all__ = ["add_remote", "local_members", "reconcile", "remove_remote", "track_signal"]


def local_members(hub: Hub, peer_ids: Iterable[str]) -> list[str]:
    """The peers of ``peer_ids`` whose socket is on this hub (live or in their resume grace)."""
    sessions = hub.sessions
    return [pid for pid in peer_ids if pid in sessions and sessions[pid].home is None]


def add_remote(hub: Hub, lobby: Lobby, peer_id: str, peer: dict[str, Any], home: str) -> Session:
    """Mirror ``peer`` (a ``peer`` object) of hub ``home`` as a member of ``lobby``."""
    ghost = hub.sessions.get(peer_id)
    if ghost is None or ghost.home is None:
        ghost = Session(peer_id, str(peer.get("name", "")), peer.get("kind", "user"), "", None, home=home)
        hub.sessions[peer_id] = ghost
    ghost.home = home
    ghost.lobby_id = lobby.id
    lobby.members[peer_id] = None
    lobby.empty_since = None
    return ghost


def remove_remote(hub: Hub, lobby: Lobby, peer_id: str) -> bool:
    """Forget remote member ``peer_id`` of ``lobby``; False when it is not one (unknown or local)."""
    ghost = hub.sessions.get(peer_id)
    if ghost is None or ghost.home is None or peer_id not in lobby.members:
        return False
    lobby.members.pop(peer_id, None)
    lobby.pending_offers = {pair for pair in lobby.pending_offers if peer_id not in pair}
    if ghost.lobby_id == lobby.id:
        hub.sessions.pop(peer_id, None)
    return True


def reconcile(
    hub: Hub, lobby: Lobby, flat: list[str], hub_id: str, now: float, *, exclude: str | None = None,
    keep_missing: bool = False, keep: Collection[str] = (),
) -> list[Action]:
    """Make ``lobby``'s remote members match Redis' list ``flat`` (peer id, member JSON, …) and tell the local
    members: ``peer.joined`` for new ones (in join order), ``peer.left`` (``disconnected``) for vanished ones
    unless ``keep_missing`` (after an outage, while every hub re-asserts its members) or listed in ``keep``
    (sessions being taken over by this hub). A remote member whose hub changed (its session moved) is
    re-homed silently. ``exclude`` (a joiner who gets the member list in its reply) is not told."""
    remote: list[tuple[int, str, dict[str, Any]]] = []
    for i in range(0, len(flat), 2):
        member = json.loads(flat[i + 1])
        if member["hub"] != hub_id:
            remote.append((int(member.get("seq", 0)), flat[i], member))
    remote.sort(key=lambda item: item[0])
    wanted = {pid for _, pid, _ in remote}
    actions: list[Action] = []
    for pid in [] if keep_missing else [p for p in lobby.members if p not in wanted and p not in keep]:
        if remove_remote(hub, lobby, pid):
            actions += hub.deliver(local_members(hub, lobby.members), {
                "type": "peer.left", "lobby_id": lobby.id, "peer_id": pid, "reason": "disconnected"}, now)
    for _, pid, member in remote:
        known = hub.sessions.get(pid)
        if pid in lobby.members and known is not None and known.home is not None:
            known.home = member["hub"]
        if pid not in lobby.members:
            ghost = add_remote(hub, lobby, pid, member["peer"], member["hub"])
            others = [p for p in lobby.members if p not in (pid, exclude)]
            actions += hub.deliver(local_members(hub, others), {
                "type": "peer.joined", "lobby_id": lobby.id, "peer": ghost.peer_object()}, now)
    return actions


def track_signal(lobby: Lobby, sender: str, to: str, kind: str) -> None:
    """Offer-glare bookkeeping for a signal relayed from another hub (as the core does for local ones)."""
    if kind == "offer":
        lobby.pending_offers.add((sender, to))
    elif kind == "answer":
        lobby.pending_offers.discard((to, sender))
    elif kind == "bye":
        lobby.pending_offers.discard((sender, to))
        lobby.pending_offers.discard((to, sender))
