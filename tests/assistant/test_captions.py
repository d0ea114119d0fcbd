"""caption and bot.status: who may send what, and what every member receives (in-memory server, mock clock)."""

from __future__ import annotations

from typing import Any

import pytest

from voicebot.client import Client, RemoteError
from voicebot.server import Server
from voicebot.testing import open_client

CAPTION_FIELDS = {"type", "lobby_id", "from", "name", "role", "about", "text", "final", "turn_id", "ts"}
STATUS_FIELDS = {"type", "lobby_id", "peer_id", "state", "detail", "ts"}


async def _joined(clients: list[Client], room: str) -> None:
    for client in clients:
        await client.join(room)


async def test_user_caption_reaches_every_member(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "ann") as a, open_client(server, "bob") as b, open_client(server, "eve") as e:
        room = (await a.create_lobby("room"))["id"]
        await _joined([a, b], room)
        await e.join((await e.create_lobby("other"))["id"])
        await a.caption("hello there", role="user", final=False, turn_id="t1")
        for client in (a, b):
            msg = await client.next_event("caption")
            assert set(msg) == CAPTION_FIELDS
            assert {k: msg[k] for k in ("lobby_id", "from", "name", "role", "about", "text", "final", "turn_id")} == {
                "lobby_id": room, "from": a.peer_id, "name": "ann", "role": "user", "about": a.peer_id,
                "text": "hello there", "final": False, "turn_id": "t1"}
            assert isinstance(msg["ts"], int)
        await e.caption("elsewhere")
        assert (await e.next_event("caption"))["lobby_id"] != room
        await a.caption("second", about=a.peer_id)  # about oneself is fine for a user
        msg = await b.next_event("caption")
        assert (msg["text"], msg["final"], msg["turn_id"]) == ("second", True, None)


@pytest.mark.parametrize(("fields", "field"), [
    ({"role": "assistant"}, "role"),
    ({"about": "OTHER"}, "about"),
])
async def test_users_may_not_caption_as_assistant_or_for_others(
        server: Server, autojump_clock: object, fields: dict[str, Any], field: str) -> None:
    async with open_client(server, "ann") as a, open_client(server, "bob") as b:
        room = (await a.create_lobby("room"))["id"]
        await _joined([a, b], room)
        request = {"text": "x", "role": "user", "final": True, **fields}
        if request.get("about") == "OTHER":
            request["about"] = b.peer_id
        with pytest.raises(RemoteError) as info:
            await a.request("caption", **request)
        assert (info.value.code, info.value.field) == ("forbidden", field)
        await a.request("ping")  # the connection lives on


async def test_bot_captions_for_a_member_and_sends_status(server: Server, autojump_clock: object) -> None:
    async with (open_client(server, "ann") as a,
                open_client(server, "bot", kind="bot", admin_token=server.admin_token) as bot):
        room = (await a.create_lobby("room"))["id"]
        await _joined([a, bot], room)
        await bot.caption("what time is it", role="user", about=a.peer_id, final=True, turn_id="u1")
        msg = await a.next_event("caption")
        assert (msg["from"], msg["about"], msg["role"], msg["name"]) == (bot.peer_id, a.peer_id, "user", "bot")
        await bot.caption("It is noon.", role="assistant", final=True, turn_id="r1")
        msg = await a.next_event("caption")
        assert (msg["role"], msg["about"], msg["text"]) == ("assistant", bot.peer_id, "It is noon.")
        for state, detail in [("thinking", None), ("speaking", None), ("degraded", "llm chain failed"),
                              ("listening", None)]:
            await bot.bot_status(state, detail)
            for client in (a, bot):
                got = await client.next_event("bot.status")
                assert set(got) == STATUS_FIELDS
                assert {k: got[k] for k in ("lobby_id", "peer_id", "state", "detail")} == {
                    "lobby_id": room, "peer_id": bot.peer_id, "state": state, "detail": detail}
        with pytest.raises(RemoteError) as info:
            await bot.request("caption", text="x", role="user", about="p_000000000000", final=True)
        assert (info.value.code, info.value.field) == ("peer_not_found", "about")


async def test_bot_status_from_a_user_is_forbidden(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "ann") as a:
        room = (await a.create_lobby("room"))["id"]
        await a.join(room)
        with pytest.raises(RemoteError) as info:
            await a.request("bot.status", state="speaking")
        assert info.value.code == "forbidden"


@pytest.mark.parametrize(("request_", "field"), [
    ({"type": "caption", "text": "", "role": "user", "final": True}, "text"),
    ({"type": "caption", "text": "  ", "role": "user", "final": True}, "text"),
    ({"type": "caption", "text": "x" * 2001, "role": "user", "final": True}, "text"),
    ({"type": "caption", "text": "x", "role": "system", "final": True}, "role"),
    ({"type": "caption", "text": "x", "role": "user"}, "final"),
    ({"type": "caption", "text": "x", "role": "user", "final": "yes"}, "final"),
    ({"type": "caption", "text": "x", "role": "user", "final": True, "about": ""}, "about"),
    ({"type": "caption", "text": "x", "role": "user", "final": True, "turn_id": "t" * 65}, "turn_id"),
    ({"type": "bot.status", "state": "sleeping"}, "state"),
    ({"type": "bot.status", "state": "listening", "detail": "d" * 501}, "detail"),
])
async def test_invalid_fields_are_named(server: Server, autojump_clock: object, request_: dict[str, Any],
                                        field: str) -> None:
    async with open_client(server, "bot", kind="bot", admin_token=server.admin_token) as bot:
        await bot.join((await bot.create_lobby("room"))["id"])
        with pytest.raises(RemoteError) as info:
            await bot.request(request_.pop("type"), **request_)
        assert (info.value.code, info.value.field) == ("invalid_message", field)


async def test_caption_needs_a_lobby(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "bot", kind="bot", admin_token=server.admin_token) as bot:
        for kind, fields in [("caption", {"text": "x", "role": "user", "final": True}),
                             ("bot.status", {"state": "listening"})]:
            with pytest.raises(RemoteError) as info:
                await bot.request(kind, **fields)
            assert info.value.code == "not_in_lobby"
