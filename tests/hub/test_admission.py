"""The hub decides lobby admission, resumes, ``lobby.state`` and bot membership; the shell only performs effects.

Pure: explicit ``now``, no I/O. An effect's outcome is fed back by hand, as the server's carrier would.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from voicebot.errors import AuthError, LobbyError, SessionError, VoiceBotError
from voicebot.hub import (
    BOT_GONE_CLOSE,
    Admit,
    Close,
    Greeted,
    HashPassword,
    Hub,
    HubConfig,
    Membership,
    NewLobby,
    Notice,
    Persist,
    SaveSession,
    Send,
    SessionGone,
    VerifyPassword,
    bot_lobby,
    bot_ticket,
    check_bot_removal,
)
from voicebot.protocol import Hello, LobbyCreate, LobbyJoin, LobbyLeave


def make_hub(**config: Any) -> Hub:
    tokens = iter(f"token-{i}" for i in range(1000))
    return Hub(HubConfig(**config), rng=random.Random(3), new_token=lambda: next(tokens), wall_clock=lambda: 50.0,
               registered_name=lambda name: name == "owner")


def sends(actions: list[Any], conn: int) -> list[dict[str, Any]]:
    return [a.message for a in actions if isinstance(a, Send) and conn in a.conns]


def greet(hub: Hub, conn: int, name: str, *, admin: bool = False, **kw: Any) -> dict[str, Any]:
    return sends(hub.hello(conn, Hello(name=name, **kw), 0.0, admin=admin), conn)[0]


def ephemeral(hub: Hub, conn: int, **kw: Any) -> str:
    actions = hub.request(conn, LobbyCreate(name="room", **kw), 0.0)
    if isinstance(actions[0], HashPassword):  # the shell hashed the password
        actions = hub.password_hashed(actions[0].op, f"digest-{actions[0].password}", 0.0)
    [created, _] = actions
    assert isinstance(created, Send)
    return str(created.message["lobby"]["id"])


def persistent(hub: Hub, conn: int) -> str:
    [persist] = hub.request(conn, LobbyCreate(name="kept", persistent=True), 0.0)
    assert isinstance(persist, Persist)
    return str(sends(hub.persisted(persist.op, 0.0), conn)[0]["lobby"]["id"])


def member(hub: Hub, conn: int, lobby_id: str) -> None:
    actions = hub.request(conn, LobbyJoin(lobby_id=lobby_id), 0.0)
    if actions and isinstance(actions[0], Persist):
        actions = hub.persisted(actions[0].op, 0.0)
    assert "lobby.joined" in [m["type"] for m in sends(actions, conn)]


# -- lobby.create ----------------------------------------------------------------------------------
def test_create_without_persistence_is_acknowledged_at_once() -> None:
    hub = make_hub()
    peer = greet(hub, 1, "ann")["peer_id"]
    actions = hub.request(1, LobbyCreate(name="room", id="r1"), 0.0)
    [reply] = sends(actions, 1)
    assert reply["type"] == "lobby.created" and reply["reply_to"] == "r1" and reply["lobby"]["persistent"] is False
    lobby_id = reply["lobby"]["id"]
    assert lobby_id in hub.lobbies
    assert Notice("lobby.created", {"lobby_id": lobby_id, "persistent": False, "peer_id": peer}) in actions
    assert not any(isinstance(a, Persist | HashPassword) for a in actions)


def test_create_with_password_asks_the_shell_to_hash_it() -> None:
    hub = make_hub()
    greet(hub, 1, "ann")
    [ask] = hub.request(1, LobbyCreate(name="locked", password="sesame"), 0.0)
    assert isinstance(ask, HashPassword) and (ask.conn, ask.password) == (1, "sesame")
    assert hub.lobbies == {}  # nothing exists before the digest comes back
    [reply] = sends(hub.password_hashed(ask.op, "digest-of-sesame", 1.0), 1)
    lobby = hub.lobbies[reply["lobby"]["id"]]
    assert lobby.password_hash == "digest-of-sesame" and reply["lobby"]["has_password"] is True
    with pytest.raises(VoiceBotError) as info:  # an outcome is taken once
        hub.password_hashed(ask.op, "again", 1.0)
    assert info.value.code == "internal_error"


def test_persistent_create_needs_rights_then_is_written_before_it_exists() -> None:
    hub = make_hub()
    greet(hub, 1, "ann")
    with pytest.raises(AuthError) as info:
        hub.request(1, LobbyCreate(name="kept", persistent=True), 0.0)
    assert (info.value.code, info.value.field) == ("forbidden", "persistent")
    greet(hub, 2, "owner")  # a registered name may
    greet(hub, 3, "boss", admin=True)  # and so may an admin
    for conn in (2, 3):
        [persist] = hub.request(conn, LobbyCreate(name="kept", persistent=True, password="pw"), 0.0)
        assert isinstance(persist, HashPassword)
        [persist] = hub.password_hashed(persist.op, "digest", 0.0)
        assert isinstance(persist, Persist) and isinstance(persist.record, NewLobby)
        lobby = persist.record.lobby
        assert (lobby.persistent, lobby.password_hash) == (True, "digest") and lobby.id not in hub.lobbies
        assert sends(hub.persisted(persist.op, 0.0), conn)[0]["lobby"]["id"] == lobby.id
        assert lobby.id in hub.lobbies


def test_a_failed_persist_acknowledges_nothing() -> None:
    hub = make_hub()
    greet(hub, 1, "owner")
    [persist] = hub.request(1, LobbyCreate(name="kept", persistent=True), 0.0)
    assert isinstance(persist, Persist)
    hub.abandon(persist.op)  # the store refused: the shell reports its error
    assert hub.lobbies == {}
    with pytest.raises(VoiceBotError):
        hub.persisted(persist.op, 0.0)
    # a join into a persistent lobby: not a member, and nobody heard of it
    kept = persistent(hub, 1)
    member(hub, 1, kept)
    greet(hub, 2, "bob")
    [persist] = hub.request(2, LobbyJoin(lobby_id=kept), 0.0)
    assert isinstance(persist, Persist)
    hub.abandon(persist.op)
    assert list(hub.lobbies[kept].members) == [hub.require(1).peer_id] and hub.require(2).lobby_id is None


# -- lobby.join ------------------------------------------------------------------------------------
def test_join_with_password_verify_requested_then_result_then_send() -> None:
    hub = make_hub()
    owner = greet(hub, 1, "ann")["peer_id"]
    lid = ephemeral(hub, 1)
    member(hub, 1, lid)
    hub.lobbies[lid].password_hash = "digest"
    assert sends(hub.request(1, LobbyJoin(lobby_id=lid), 0.0), 1)[0]["type"] == "lobby.joined"  # members need none
    greet(hub, 2, "bob")
    with pytest.raises(LobbyError, match="needs a password") as info:
        hub.request(2, LobbyJoin(lobby_id=lid), 0.0)
    assert info.value.code == "wrong_password"
    [verify] = hub.request(2, LobbyJoin(lobby_id=lid, password="guess"), 0.0)
    assert isinstance(verify, VerifyPassword)
    assert (verify.conn, verify.lobby_id, verify.password_hash, verify.password) == (2, lid, "digest", "guess")
    with pytest.raises(LobbyError, match="wrong password") as info:
        hub.password_checked(verify.op, False, 0.0)
    assert hub.require(2).lobby_id is None
    [verify] = hub.request(2, LobbyJoin(lobby_id=lid, password="right", id="j"), 0.0)
    assert isinstance(verify, VerifyPassword)
    actions = hub.password_checked(verify.op, True, 0.0)
    joined = sends(actions, 2)[0]
    assert joined["type"] == "lobby.joined" and joined["reply_to"] == "j"
    assert [p["peer_id"] for p in joined["peers"]] == [owner]
    assert sends(actions, 1)[0]["type"] == "peer.joined"


def test_tickets_admit_without_password_and_forged_ones_do_not() -> None:
    hub = make_hub()
    greet(hub, 1, "ann")
    lid = ephemeral(hub, 1, password="x")  # hashed by the (test) shell
    greet(hub, 2, "bot")
    ticket = hub.tickets.grant(lid, 0.0, ttl=60.0)
    with pytest.raises(LobbyError) as info:
        hub.request(2, LobbyJoin(lobby_id=lid, ticket="forged", password="guess"), 0.0)
    assert info.value.code == "wrong_password"
    with pytest.raises(LobbyError):  # expired
        hub.request(2, LobbyJoin(lobby_id=lid, ticket=ticket), 61.0)
    assert sends(hub.request(2, LobbyJoin(lobby_id=lid, ticket=ticket), 1.0), 2)[0]["type"] == "lobby.joined"


def test_persistent_membership_is_written_before_the_join_is_sent() -> None:
    hub = make_hub()
    greet(hub, 1, "owner")
    kept = persistent(hub, 1)
    actions = hub.request(1, LobbyJoin(lobby_id=kept), 0.0)
    assert actions == [Persist(actions[0].op, 1, Membership(hub.require(1).peer_id, kept))]  # type: ignore[union-attr]
    assert hub.require(1).lobby_id is None  # not yet: only once it is stored
    assert sends(hub.persisted(actions[0].op, 0.0), 1)[0]["type"] == "lobby.joined"  # type: ignore[union-attr]
    # switching to an ephemeral lobby and leaving a persistent one store the session before the reply
    room = ephemeral(hub, 1)
    switched = hub.request(1, LobbyJoin(lobby_id=room), 0.0)
    assert switched[0] == SaveSession(hub.require(1).peer_id) and hub.require(1).lobby_id == room
    member(hub, 1, kept)
    left = hub.request(1, LobbyLeave(), 0.0)
    assert left[0] == SaveSession(hub.require(1).peer_id) and sends(left, 1)[0]["type"] == "lobby.left"
    assert not any(isinstance(a, SaveSession) for a in hub.request(1, LobbyJoin(lobby_id=ephemeral(hub, 1)), 0.0))


def test_shared_membership_asks_for_a_place_after_the_password() -> None:
    hub = make_hub(shared_membership=True)
    greet(hub, 1, "ann")
    lid = ephemeral(hub, 1, password="x")
    greet(hub, 2, "bob")
    [verify] = hub.request(2, LobbyJoin(lobby_id=lid, password="x"), 0.0)
    assert isinstance(verify, VerifyPassword)
    [admit] = hub.password_checked(verify.op, True, 0.0)
    assert isinstance(admit, Admit) and (admit.conn, admit.lobby_id) == (2, lid)
    assert sends(hub.admitted(admit.op, 0.0), 2)[0]["type"] == "lobby.joined"
    with pytest.raises(VoiceBotError):  # an op answered with another effect's outcome is a shell bug
        hub.persisted(admit.op, 0.0)


def test_a_closed_socket_forgets_its_waiting_request() -> None:
    hub = make_hub()
    greet(hub, 1, "ann")
    [ask] = hub.request(1, LobbyCreate(name="r", password="pw"), 0.0)
    assert isinstance(ask, HashPassword)
    hub.disconnect(1, 0.0)
    assert len(hub.suspended) == 0
    with pytest.raises(VoiceBotError):
        hub.password_hashed(ask.op, "digest", 0.0)
    assert hub.lobbies == {}


# -- hello and lobby.state -------------------------------------------------------------------------
def test_hello_decides_resume_and_stores_the_session_before_welcome() -> None:
    hub = make_hub()
    first = hub.hello(1, Hello(name="ann"), 0.0)
    peer = sends(first, 1)[0]["peer_id"]
    assert first[:2] == [Greeted(1, peer, "ann", "user", resumed=False, admin=False), SaveSession(peer)]
    token = sends(first, 1)[0]["resume_token"]
    again = hub.hello(2, Hello(name="ann", resume=token), 1.0, admin=True)
    assert again[:3] == [Close(1, 4001, "session resumed on another connection"),
                         Greeted(2, peer, "ann", "user", resumed=True, admin=True), SaveSession(peer)]
    assert sends(again, 2)[0]["resumed"] is True


def test_lobby_state_is_the_hubs_view() -> None:
    hub = make_hub()
    assert hub.lobby_state(9) == {"type": "lobby.state", "lobby": None, "peers": []}
    a, b, c = (greet(hub, i, n)["peer_id"] for i, n in ((1, "ann"), (2, "bob"), (3, "cy")))
    assert hub.lobby_state(1) == {"type": "lobby.state", "lobby": None, "peers": []}
    lid = ephemeral(hub, 1)
    for conn in (1, 2, 3):
        member(hub, conn, lid)
    state = hub.lobby_state(2)
    assert state["lobby"] == hub.lobbies[lid].public() and state["lobby"]["members"] == 3
    assert [p["peer_id"] for p in state["peers"]] == [a, c]  # the others, in join order
    assert {p["name"] for p in hub.lobby_state(1)["peers"]} == {"bob", "cy"} and b not in str(hub.lobby_state(2))


# -- bots ------------------------------------------------------------------------------------------
def test_bot_membership_rules() -> None:
    hub = make_hub()
    ann = greet(hub, 1, "ann")["peer_id"]
    greet(hub, 2, "bob")
    greet(hub, 3, "boss", admin=True)
    with pytest.raises(LobbyError) as info:
        bot_lobby(hub, 1, None)
    assert info.value.code == "not_in_lobby"
    with pytest.raises(LobbyError) as info:
        bot_lobby(hub, 1, "l_missing")
    assert info.value.code == "lobby_not_found"
    lid = ephemeral(hub, 1)
    member(hub, 1, lid)
    assert bot_lobby(hub, 1, None).id == lid and bot_lobby(hub, 3, lid).id == lid  # own lobby; an admin: any
    with pytest.raises(LobbyError) as info:
        bot_lobby(hub, 2, lid)
    assert info.value.code == "not_in_lobby"
    assert bot_ticket(hub, hub.lobbies[lid], 0.0) is None
    hub.lobbies[lid].password_hash = "digest"
    ticket = bot_ticket(hub, hub.lobbies[lid], 0.0)
    assert ticket is not None and hub.tickets.admits(ticket, lid, 1.0)
    check_bot_removal(hub, 1, lid, ann)  # its owner
    check_bot_removal(hub, 3, "elsewhere", ann)  # an admin
    member(hub, 2, ephemeral(hub, 2))
    with pytest.raises(LobbyError) as info:
        check_bot_removal(hub, 2, lid, ann)
    assert info.value.code == "not_in_lobby"
    hub.lobbies[lid].password_hash = None
    member(hub, 2, lid)
    with pytest.raises(AuthError) as auth:
        check_bot_removal(hub, 2, lid, ann)
    assert auth.value.code == "not_bot_owner"
    with pytest.raises(SessionError):
        bot_lobby(hub, 7, None)


def test_ending_a_bot_closes_it_and_tells_its_lobby() -> None:
    hub = make_hub()
    ann = greet(hub, 1, "ann")["peer_id"]
    bot = greet(hub, 2, "helper", kind="bot")["peer_id"]
    lid = ephemeral(hub, 1)
    member(hub, 1, lid)
    member(hub, 2, lid)
    actions = hub.end_bot(bot, "left", 5.0)
    assert actions[0] == Close(2, BOT_GONE_CLOSE, "bot ended: left")
    assert sends(actions, 1) == [{"type": "peer.left", "lobby_id": lid, "peer_id": bot, "reason": "left"}]
    assert [(g.peer_id, g.reason) for g in actions if isinstance(g, SessionGone)] == [(bot, "left")]
    assert list(hub.lobbies[lid].members) == [ann] and bot not in hub.sessions
    assert hub.end_bot(bot, "left", 6.0) == []  # already gone
    # a bot in its resume grace has no socket to close
    bot2 = greet(hub, 3, "helper2", kind="bot")["peer_id"]
    hub.disconnect(3, 7.0)
    assert not any(isinstance(a, Close) for a in hub.end_bot(bot2, "disconnected", 8.0))
