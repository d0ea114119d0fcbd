"""A session moving between hubs, sans-IO: ``hand_off`` on the hub giving it away, ``adopt``/``prepend`` on the
hub taking it over, then the core's ordinary ``hello {resume}``."""

from __future__ import annotations

from voicebot.hub import (
    Close,
    Forward,
    Session,
    SessionGone,
    adopt,
    hand_off,
    hold_delivery,
    prepend,
    release_delivery,
    token_hash,
)
from voicebot.protocol import Chat, Hello, LobbyJoin

from .test_core import hello, lobby, make_hub, sends


def test_hand_off_closes_the_socket_keeps_a_remote_member_and_returns_the_buffer() -> None:
    hub = make_hub()
    ada, bob = hello(hub, 1, "ada"), hello(hub, 2, "bob")
    lid = lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    hub.request(2, LobbyJoin(lobby_id=lid), 0.0)
    hub.disconnect(2, 1.0)
    hub.request(1, Chat(text="one"), 2.0)
    hub.request(1, Chat(text="two"), 3.0)
    buffered, actions = hand_off(hub, bob["peer_id"], "hub-b")
    assert [m["text"] for m in buffered] == ["one", "two"]
    assert actions == [SessionGone(bob["peer_id"], "moved")]  # no socket left to close; no session id
    assert hub.find_resumable(bob["resume_token"]) is None  # the token works on hub-b only now
    assert hub.next_deadline() is None  # its grace timer is void
    # Bob is a remote member now: Ada's messages go to his new hub
    forwards = [a for a in hub.request(1, Chat(text="three"), 4.0) if isinstance(a, Forward)]
    assert [(f.home, f.peer_ids, f.message["text"]) for f in forwards] == [("hub-b", (bob["peer_id"],), "three")]
    # a live socket is closed with 4001
    _, actions = hand_off(hub, ada["peer_id"], "hub-c")
    assert actions[0] == Close(1, 4001, "session resumed on another hub")
    assert hub.session_of(1) is None
    assert hand_off(hub, "p_unknown", "hub-b") == ([], [])


def test_adopt_replaces_the_remote_member_and_resumes_with_the_older_messages_first() -> None:
    hub = make_hub()
    cy = hello(hub, 1, "cy")
    lid = lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    ghost = Session("p_bob", "bob", "user", "", None, lobby_id=lid, home="hub-a")
    hub.sessions["p_bob"] = ghost
    hub.lobbies[lid].members["p_bob"] = None
    moved = Session("p_bob", "bob", "user", token_hash("bob-token"), None, lobby_id=lid, session_id="s1")
    adopt(hub, moved, 30.0)
    assert hub.sessions["p_bob"] is moved and moved.home is None
    assert list(hub.lobbies[lid].members) == [cy["peer_id"], "p_bob"]
    hub.request(1, Chat(text="newer"), 1.0)  # buffered here while Bob has no socket
    prepend(moved, [{"type": "chat", "text": "older"}])
    resumed = hub.hello(2, Hello(name="bob", resume="bob-token"), 2.0)
    welcome, *rest = sends(resumed, 2)
    assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, "p_bob", lid)
    assert [m["text"] for m in rest] == ["older", "newer"]
    assert moved.buffer_bytes == 0 and not moved.buffer


def test_held_delivery_waits_in_the_buffer_and_is_released_in_order() -> None:
    hub = make_hub(resume_buffer=3)
    hello(hub, 1, "ada")
    bob = hello(hub, 2, "bob")
    lid = lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    hub.request(2, LobbyJoin(lobby_id=lid), 0.0)
    hold_delivery(hub, bob["peer_id"])  # as while his hello is being stored
    assert sends(hub.request(1, Chat(text="one"), 1.0), 2) == []
    hub.request(1, Chat(text="two"), 2.0)
    assert [m["text"] for m in sends(release_delivery(hub, bob["peer_id"], 2), 2)] == ["one", "two"]
    assert release_delivery(hub, bob["peer_id"], 2) == []  # once
    assert [m["text"] for m in sends(hub.request(1, Chat(text="three"), 3.0), 2)] == ["three"]  # live again
    # held, then disconnected: what waited stays buffered for a resume
    hold_delivery(hub, bob["peer_id"])
    hub.request(1, Chat(text="four"), 4.0)
    hub.disconnect(2, 5.0)
    assert release_delivery(hub, bob["peer_id"], 2) == []
    assert [m["text"] for m in hub.sessions[bob["peer_id"]].buffer] == ["four"]
    # held beyond the buffer's bound: the session ends as in grace
    cy = hello(hub, 3, "cy")
    hub.request(3, LobbyJoin(lobby_id=lid), 6.0)
    hold_delivery(hub, cy["peer_id"])
    for i in range(4):
        hub.request(1, Chat(text=f"x{i}"), 7.0 + i)
    assert cy["peer_id"] not in hub.sessions
