"""The sans-IO mirror of remote members: reconcile with Redis' list, join order, what local members are told."""

from __future__ import annotations

import json

from voicebot.cluster._mirror import local_members, reconcile, remove_remote, track_signal
from voicebot.hub import Forward, Hub, Lobby, Send, Session


def _hub_with_local_member() -> tuple[Hub, Lobby]:
    hub = Hub()
    lobby = Lobby(id="l_1", name="room", private=False, password_hash=None, max_members=8)
    hub.lobbies[lobby.id] = lobby
    hub.sessions["p_local"] = Session("p_local", "Ada", "user", "", 7, lobby_id=lobby.id)
    lobby.members["p_local"] = None
    return hub, lobby


def _flat(*members: tuple[str, str, int]) -> list[str]:
    out: list[str] = []
    for pid, hub_id, seq in members:
        out += [pid, json.dumps({"peer": {"peer_id": pid, "name": pid.upper(), "kind": "user"}, "hub": hub_id,
                                 "seq": seq})]
    return out


def test_reconcile_adds_in_join_order_and_tells_local_members_only() -> None:
    hub, lobby = _hub_with_local_member()
    actions = reconcile(hub, lobby, _flat(("p_b", "h2", 9), ("p_local", "me", 1), ("p_a", "h2", 3)), "me", 0.0)
    assert list(lobby.members) == ["p_local", "p_a", "p_b"]
    assert hub.sessions["p_a"].home == "h2" and hub.sessions["p_local"].home is None
    joined = [a.message["peer"]["peer_id"] for a in actions if isinstance(a, Send)]
    assert joined == ["p_a", "p_b"] and all(a.conns == (7,) for a in actions if isinstance(a, Send))
    assert not [a for a in actions if isinstance(a, Forward)]  # remote members are not told by us
    assert local_members(hub, lobby.members) == ["p_local"]
    # the core now forwards a chat to the remote members' hub
    out = hub.deliver(list(lobby.members), {"type": "chat", "text": "hi"}, 0.0)
    assert Forward("h2", ("p_a", "p_b"), {"type": "chat", "text": "hi"}) in out


def test_reconcile_removes_vanished_members_unless_settling() -> None:
    hub, lobby = _hub_with_local_member()
    reconcile(hub, lobby, _flat(("p_a", "h2", 3)), "me", 0.0)
    assert reconcile(hub, lobby, [], "me", 1.0, keep_missing=True) == []
    assert "p_a" in lobby.members
    actions = reconcile(hub, lobby, [], "me", 2.0)
    assert [a.message for a in actions if isinstance(a, Send)] == [
        {"type": "peer.left", "lobby_id": "l_1", "peer_id": "p_a", "reason": "disconnected"}]
    assert "p_a" not in lobby.members and "p_a" not in hub.sessions
    assert not remove_remote(hub, lobby, "p_local")  # a local member is never removed as a remote one


def test_glare_bookkeeping_for_relayed_signals() -> None:
    _, lobby = _hub_with_local_member()
    track_signal(lobby, "p_a", "p_local", "offer")
    assert ("p_a", "p_local") in lobby.pending_offers
    track_signal(lobby, "p_local", "p_a", "answer")
    assert not lobby.pending_offers


def test_reconcile_rehomes_a_moved_member_and_keeps_one_being_taken_over() -> None:
    hub, lobby = _hub_with_local_member()
    reconcile(hub, lobby, _flat(("p_a", "h2", 3), ("p_b", "h2", 4)), "me", 0.0)
    # p_a's session moved to h3 (its "moved" notice was lost); p_b is being taken over by this hub ("me")
    actions = reconcile(hub, lobby, _flat(("p_a", "h3", 3), ("p_b", "me", 4)), "me", 1.0, keep={"p_b"})
    assert actions == []  # nobody is told anything
    assert hub.sessions["p_a"].home == "h3" and "p_b" in lobby.members
    actions = reconcile(hub, lobby, _flat(("p_a", "h3", 3)), "me", 2.0)  # not kept any more: p_b left
    assert [a.message["peer_id"] for a in actions if isinstance(a, Send)] == ["p_b"]
