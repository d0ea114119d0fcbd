"""The hub core without any I/O: events in, actions out, explicit time."""

from __future__ import annotations

import random
from typing import Any

import pytest

from voicebot.errors import LobbyError, RateLimitError, SessionError, ValidationError
from voicebot.hub import Close, Hub, HubConfig, Notice, Persist, Send, SessionGone, VerifyPassword, Warn
from voicebot.protocol import Chat, Hello, LobbyCreate, LobbyJoin, LobbyLeave, Signal


def make_hub(**config: Any) -> Hub:
    tokens = iter(f"token-{i}" for i in range(1000))
    return Hub(HubConfig(**config), rng=random.Random(5), new_token=lambda: next(tokens), wall_clock=lambda: 1000.0,
               registered_name=lambda name: name == "registered")


def sends(actions: list[Any], conn: int) -> list[dict[str, Any]]:
    return [a.message for a in actions if isinstance(a, Send) and conn in a.conns]


def hello(hub: Hub, conn: int, name: str, now: float = 0.0, **kw: Any) -> dict[str, Any]:
    return sends(hub.hello(conn, Hello(name=name, **kw), now), conn)[0]


def lobby(hub: Hub, conn: int, now: float = 0.0, **kw: Any) -> str:
    kw.setdefault("name", "room")
    actions = hub.request(conn, LobbyCreate(**kw), now)
    if actions and isinstance(actions[0], Persist):  # a persistent lobby: the shell's write succeeded
        actions = hub.persisted(actions[0].op, now)
    message = sends(actions, conn)[0]
    return str(message["lobby"]["id"])


def test_ids_and_tokens_are_deterministic_under_seed() -> None:
    a, b = make_hub(), make_hub()
    assert hello(a, 1, "x") == hello(b, 1, "x")
    assert lobby(a, 1) == lobby(b, 1)


def test_resume_within_grace_then_expiry() -> None:
    hub = make_hub(resume_grace=30.0)
    w1 = hello(hub, 1, "alice")
    hello(hub, 2, "bob")
    lid = lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    hub.request(2, LobbyJoin(lobby_id=lid), 0.0)
    assert hub.disconnect(1, 5.0)[0] == Notice("session.disconnected", {"peer_id": w1["peer_id"], "conn": 1})
    assert hub.next_deadline() == 35.0
    # messages to alice during the grace are buffered, not sent
    actions = hub.request(2, Chat(text="hi"), 6.0)
    assert sends(actions, 1) == [] and len(sends(actions, 2)) == 1
    resumed = hub.hello(3, Hello(name="whatever", resume=w1["resume_token"]), 7.0)
    welcome, buffered = sends(resumed, 3)
    assert (welcome["resumed"], welcome["peer_id"], welcome["lobby_id"]) == (True, w1["peer_id"], lid)
    assert buffered["text"] == "hi"
    assert hub.next_deadline() is None
    # second disconnect, this time the grace runs out
    hub.disconnect(3, 10.0)
    assert hub.expire(39.9) == []
    expired = hub.expire(40.0)
    assert sends(expired, 2) == [{"type": "peer.left", "lobby_id": lid, "peer_id": w1["peer_id"],
                                  "reason": "disconnected"}]
    gone = [a for a in expired if isinstance(a, SessionGone)]
    assert [(g.peer_id, g.reason) for g in gone] == [(w1["peer_id"], "disconnected")] and gone[0].session_id
    assert w1["peer_id"] not in hub.sessions


def test_resume_of_open_socket_closes_it_with_4001_and_ignores_its_late_disconnect() -> None:
    hub = make_hub()
    w = hello(hub, 1, "a")
    actions = hub.hello(2, Hello(name="a", resume=w["resume_token"]), 1.0)
    assert Close(1, 4001, "session resumed on another connection") in actions
    assert hub.disconnect(1, 2.0) == []  # the replaced socket's close must not start a grace
    assert hub.session_of(2) is not None and hub.next_deadline() is None


def test_unknown_or_used_token_starts_fresh_session() -> None:
    hub = make_hub()
    w = hello(hub, 1, "a")
    hub.hello(2, Hello(name="a", resume=w["resume_token"]), 0.0)
    again = hello(hub, 3, "a", resume=w["resume_token"])
    assert again["resumed"] is False and again["peer_id"] != w["peer_id"]


def test_buffer_overflow_ends_session() -> None:
    hub = make_hub(resume_buffer=2)
    hello(hub, 1, "a")
    hello(hub, 2, "b")
    lid = lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    hub.request(2, LobbyJoin(lobby_id=lid), 0.0)
    hub.disconnect(2, 0.0)
    hub.request(1, Chat(text="1"), 0.0)
    hub.request(1, Chat(text="2"), 0.0)
    actions = hub.request(1, Chat(text="3"), 0.0)
    assert any(isinstance(a, SessionGone) for a in actions)
    assert [m["type"] for m in sends(actions, 1)] == ["chat", "peer.left"]


def test_ephemeral_lobby_lifecycle_and_persistent_lobbies() -> None:
    hub = make_hub(empty_lobby_ttl=300.0)
    hello(hub, 1, "registered")
    never_joined = lobby(hub, 1, now=10.0)
    kept = lobby(hub, 1, now=10.0, persistent=True)
    assert hub.next_deadline() == 310.0
    assert [n.fields["lobby_id"] for n in hub.expire(310.0) if isinstance(n, Notice)] == [never_joined]
    [persist] = hub.request(1, LobbyJoin(lobby_id=kept), 311.0)
    assert isinstance(persist, Persist)
    hub.persisted(persist.op, 311.0)
    hub.request(1, LobbyLeave(), 312.0)
    assert kept in hub.lobbies  # persistent lobbies outlive their members
    used = lobby(hub, 1, now=313.0)
    hub.request(1, LobbyJoin(lobby_id=used), 313.0)
    actions = hub.request(1, LobbyLeave(), 314.0)
    assert used not in hub.lobbies
    assert Notice("lobby.deleted", {"lobby_id": used, "reason": "empty", "persistent": False}) in actions


def test_switching_lobbies_tells_both_sides() -> None:
    hub = make_hub()
    hello(hub, 1, "a")
    hello(hub, 2, "b")
    first, second = lobby(hub, 1), lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=first), 0.0)
    hub.request(2, LobbyJoin(lobby_id=first), 0.0)
    actions = hub.request(2, LobbyJoin(lobby_id=second), 0.0)
    assert sends(actions, 1)[0]["type"] == "peer.left"
    assert [m["type"] for m in sends(actions, 2)] == ["lobby.left", "lobby.joined"]
    assert sends(hub.request(2, LobbyJoin(lobby_id=second), 0.0), 2)[0]["type"] == "lobby.joined"


def test_domain_errors() -> None:
    hub = make_hub(max_lobbies=1)
    with pytest.raises(SessionError, match="hello"):
        hub.request(1, Chat(text="x"), 0.0)
    hello(hub, 1, "a")
    with pytest.raises(SessionError):
        hub.hello(1, Hello(name="a"), 0.0)
    lid = lobby(hub, 1)
    with pytest.raises(RateLimitError) as info:
        lobby(hub, 1)
    assert info.value.code == "lobby_limit" and info.value.retry_after == 60.0
    with pytest.raises(ValidationError) as vinfo:
        hello(hub, 2, "no/slash")
    assert vinfo.value.code == "name_invalid"
    hub.lobbies[lid].password_hash = "h"
    with pytest.raises(LobbyError) as linfo:
        hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    assert linfo.value.code == "wrong_password"
    [verify] = hub.request(1, LobbyJoin(lobby_id=lid, password="p"), 0.0)
    assert isinstance(verify, VerifyPassword) and (verify.password_hash, verify.password) == ("h", "p")
    assert sends(hub.password_checked(verify.op, True, 0.0), 1)


def test_signal_glare_and_pending_offer_bookkeeping() -> None:
    hub = make_hub()
    a, b = hello(hub, 1, "a")["peer_id"], hello(hub, 2, "b")["peer_id"]
    lid = lobby(hub, 1)
    hub.request(1, LobbyJoin(lobby_id=lid), 0.0)
    hub.request(2, LobbyJoin(lobby_id=lid), 0.0)
    hub.request(1, Signal(to=b, kind="offer", sdp="v=0"), 0.0)
    actions = hub.request(2, Signal(to=a, kind="offer", sdp="v=0"), 0.0)
    warn = next(x for x in actions if isinstance(x, Warn))
    assert warn.conn == 2 and warn.error.code == "offer_glare" and warn.error.context["polite"] == max(a, b)
    hub.request(1, Signal(to=b, kind="bye"), 0.0)
    assert hub.lobbies[lid].pending_offers == set()
    hub.request(1, Signal(to=b, kind="offer", sdp="v=0"), 0.0)
    hub.request(2, Signal(to=a, kind="answer", sdp="v=0"), 0.0)
    assert not any(isinstance(x, Warn) for x in hub.request(2, Signal(to=a, kind="offer", sdp="v=0"), 0.0))
