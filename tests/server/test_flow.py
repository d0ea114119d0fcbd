"""Protocol v1 end to end over in-memory WebSocket connections (autojump clock)."""

from __future__ import annotations

import pytest
import trio

from voicebot.client import RemoteError
from voicebot.server import Server
from voicebot.testing import open_client


async def test_hello_welcome_fields(server: Server, autojump_clock: object) -> None:
    async with open_client(server) as c:
        welcome = await c.hello("  alice  ")
    assert welcome["type"] == "welcome"
    assert welcome["name"] == "alice"
    assert welcome["resumed"] is False
    assert welcome["lobby_id"] is None
    assert welcome["protocol"] == 1
    assert welcome["heartbeat_interval"] == 15.0
    assert welcome["server"].startswith("voicebot/")
    assert welcome["peer_id"].startswith("p_")
    assert len(welcome["resume_token"]) >= 40


@pytest.mark.parametrize("name", ["", "   ", "x" * 33, "bad<name>", "tab\tname"])
async def test_hello_rejects_bad_names(server: Server, name: str, autojump_clock: object) -> None:
    async with open_client(server) as c:
        with pytest.raises(RemoteError) as info:
            await c.hello(name)
        assert info.value.code == "name_invalid"
        assert info.value.field == "name"
        # the connection survives a bad message
        assert (await c.hello("ok name_1.-"))["name"] == "ok name_1.-"


async def test_requests_before_hello(server: Server, autojump_clock: object) -> None:
    async with open_client(server) as c:
        assert (await c.request("ping"))["type"] == "pong"
        with pytest.raises(RemoteError) as info:
            await c.request("lobby.list")
        assert info.value.code == "hello_required"
        assert info.value.category == "session"
        await c.hello("a")
        with pytest.raises(RemoteError) as info:
            await c.hello("a")
        assert info.value.code == "already_hello"


async def test_lobby_lifecycle_and_broadcasts(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "alice") as a, open_client(server, "bob") as b:
        lobby = await a.create_lobby("room", max_members=4)
        assert lobby == {"id": lobby["id"], "name": "room", "private": False, "has_password": False,
                         "members": 0, "max_members": 4, "persistent": False}
        hidden = await a.create_lobby("secret", private=True)
        listed = (await b.request("lobby.list"))["lobbies"]
        assert [lb["id"] for lb in listed] == [lobby["id"]]
        joined = await a.join(lobby["id"])
        assert joined["peers"] == [] and joined["lobby"]["members"] == 1
        joined = await b.join(lobby["id"])
        assert joined["peers"] == [{"peer_id": a.peer_id, "name": "alice", "kind": "user"}]
        event = await a.next_event("peer.joined")
        assert event == {"type": "peer.joined", "lobby_id": lobby["id"],
                         "peer": {"peer_id": b.peer_id, "name": "bob", "kind": "user"}}
        # private lobbies can be joined by id; joining another lobby leaves the first
        await b.join(hidden["id"])
        left = await a.next_event("peer.left")
        assert left == {"type": "peer.left", "lobby_id": lobby["id"], "peer_id": b.peer_id, "reason": "left"}
        reply = await a.leave()
        assert reply["lobby_id"] == lobby["id"]
        # the ephemeral lobby vanished with its last member
        assert lobby["id"] not in {lb["id"] for lb in (await a.request("lobby.list"))["lobbies"]}
        with pytest.raises(RemoteError) as info:
            await a.leave()
        assert info.value.code == "not_in_lobby"


async def test_lobby_errors(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b, open_client(server, "c") as c:
        with pytest.raises(RemoteError) as info:
            await a.join("l_nope")
        assert (info.value.code, info.value.field) == ("lobby_not_found", "lobby_id")
        small = await a.create_lobby("pair", max_members=2)
        await a.join(small["id"])
        await b.join(small["id"])
        with pytest.raises(RemoteError) as info:
            await c.join(small["id"])
        assert info.value.code == "lobby_full" and info.value.retryable
        locked = await a.create_lobby("locked", password="hunter2")
        assert locked["has_password"] is True
        with pytest.raises(RemoteError) as info:
            await c.join(locked["id"])
        assert (info.value.code, info.value.field) == ("wrong_password", "password")
        with pytest.raises(RemoteError) as info:
            await c.join(locked["id"], password="nope")
        assert info.value.code == "wrong_password"
        assert (await c.join(locked["id"], password="hunter2"))["lobby"]["id"] == locked["id"]


async def test_signal_relay_and_refusals(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b, open_client(server, "x") as x:
        with pytest.raises(RemoteError) as info:
            await a.request("signal", to="p_x", kind="bye")
        assert info.value.code == "not_in_lobby"
        room = await a.create_lobby("room")
        other = await x.create_lobby("other")
        await a.join(room["id"])
        await b.join(room["id"])
        await x.join(other["id"])
        sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"
        await a.request("signal", to=b.peer_id, kind="offer", sdp=sdp)
        got = await b.next_event("signal")
        assert got == {"type": "signal", "from": a.peer_id, "kind": "offer", "sdp": sdp, "lobby_id": room["id"]}
        await b.signal(a.peer_id, "answer", sdp=sdp)
        assert (await a.next_event("signal"))["kind"] == "answer"
        cand = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host", "sdpMid": "0",
                "sdpMLineIndex": 0}
        await a.signal(b.peer_id, "candidate", candidate=cand)
        assert (await b.next_event("signal"))["candidate"] == cand
        await a.signal(b.peer_id, "candidate", candidate=None)
        assert (await b.next_event("signal"))["candidate"] is None
        # cross-lobby signal is refused and nothing reaches x
        with pytest.raises(RemoteError) as info:
            await a.request("signal", to=x.peer_id, kind="offer", sdp=sdp)
        assert (info.value.code, info.value.field) == ("peer_not_found", "to")
        with pytest.raises(RemoteError) as info:
            await a.request("signal", to=a.peer_id, kind="bye")
        assert info.value.field == "to"
        for bad, field in [({"kind": "offer"}, "sdp"), ({"kind": "offer", "sdp": "x=1"}, "sdp"),
                           ({"kind": "offer", "sdp": "v=0" + "a" * 33000}, "sdp"), ({"kind": "candidate"}, "candidate"),
                           ({"kind": "dance"}, "kind"), ({"kind": "candidate", "candidate": {"sdpMid": "0"}},
                                                        "candidate.candidate")]:
            with pytest.raises(RemoteError) as info:
                await a.request("signal", to=b.peer_id, **bad)
            assert (info.value.code, info.value.field) == ("invalid_message", field), bad
        with trio.move_on_after(1):
            event = await x.next_event("signal")
            pytest.fail(f"x received a signal from another lobby: {event}")


async def test_offer_glare_is_reported_and_relayed(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        await b.join(room["id"])
        sdp = "v=0\r\n"
        await a.signal(b.peer_id, "offer", sdp=sdp)
        await b.signal(a.peer_id, "offer", sdp=sdp)
        warning = await b.next_event("error")
        assert warning["code"] == "offer_glare" and warning["severity"] == "medium" and warning["category"] == "webrtc"
        assert (await a.next_event("signal"))["kind"] == "offer"  # relayed anyway: perfect negotiation resolves it


async def test_chat_reaches_every_member_including_sender(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b, open_client(server, "c") as c:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        await b.join(room["id"])
        with pytest.raises(RemoteError) as info:
            await c.request("chat", text="hi")
        assert info.value.code == "not_in_lobby"
        await b.chat("hello all")
        for client in (a, b):
            msg = await client.next_event("chat")
            assert {k: msg[k] for k in ("lobby_id", "from", "name", "text")} == {
                "lobby_id": room["id"], "from": b.peer_id, "name": "b", "text": "hello all"}
            assert isinstance(msg["ts"], int)
        for bad in ["", "   ", "x" * 2001]:
            with pytest.raises(RemoteError) as info:
                await b.request("chat", text=bad)
            assert info.value.field == "text"


async def test_request_ids_and_envelope_errors(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a:
        assert (await a.request("ping"))["reply_to"] == 2  # hello was id 1
        await a.send({"type": "ping", "id": "x" * 64})
        assert (await a.next_event())["type"] == "pong"
        cases = [
            ("{nope", "invalid_json", None),
            ("[1,2]", "invalid_message", None),
            ('{"id": 1}', "invalid_message", "type"),
            ('{"type": 5}', "invalid_message", "type"),
            ('{"type": "lobby.teleport", "id": "q"}', "unknown_type", "type"),
            ('{"type": "ping", "id": true}', "invalid_message", "id"),
            ('{"type": "ping", "id": "' + "x" * 65 + '"}', "invalid_message", "id"),
            ('{"type": "lobby.create", "name": "r", "max_members": 65}', "invalid_message", "max_members"),
            ('{"type": "lobby.create", "name": "r", "max_members": "3"}', "invalid_message", "max_members"),
            ('{"type": "lobby.create", "name": ""}', "invalid_message", "name"),
        ]
        for frame, code, field in cases:
            await a.send_raw(frame)
            error = await a.next_event("error")
            assert (error["code"], error.get("field")) == (code, field), frame
            assert error["category"] == "validation" and error["severity"] == "low"
            assert error["correlation_id"] and error["retryable"] is False
        await a.send_raw(b"\x00binary")
        assert (await a.next_event("error"))["code"] == "invalid_message"
        await a.send_raw('{"type": "lobby.teleport", "id": "q"}')
        assert (await a.next_event("error"))["reply_to"] == "q"
        assert (await a.request("ping"))["type"] == "pong"  # still connected after all of it
