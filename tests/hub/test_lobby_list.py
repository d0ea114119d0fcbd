"""``lobby.list {cursor?, limit?}`` is paginated, capped and stably ordered."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from voicebot import protocol
from voicebot.errors import ValidationError
from voicebot.hub import Hub, Send
from voicebot.protocol import LOBBY_LIST_LIMIT, LOBBY_LIST_MAX, Hello, LobbyCreate, LobbyList


def _hub(lobbies: int, seed: int = 1) -> tuple[Hub, set[str]]:
    hub = Hub(rng=random.Random(seed))
    hub.hello(1, Hello(name="a"), 0.0)
    public: set[str] = set()
    rng = random.Random(seed)
    for i in range(lobbies):
        private = rng.random() < 0.2
        [send, _] = hub.request(1, LobbyCreate(name=f"r{i}", private=private), 0.0)
        assert isinstance(send, Send)
        if not private:
            public.add(send.message["lobby"]["id"])
    return hub, public


def _page(hub: Hub, **fields: Any) -> dict[str, Any]:
    [send] = hub.request(1, LobbyList(**fields), 0.0)
    assert isinstance(send, Send)
    return send.message


@pytest.mark.parametrize("limit", [1, 7, LOBBY_LIST_LIMIT, LOBBY_LIST_MAX, None])
def test_pages_cover_every_public_lobby_once_in_order(limit: int | None) -> None:
    hub, public = _hub(260)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        fields: dict[str, Any] = {"cursor": cursor} if cursor else {}
        if limit is not None:
            fields["limit"] = limit
        reply = _page(hub, **fields)
        assert len(reply["lobbies"]) <= (limit or LOBBY_LIST_LIMIT)
        seen += [lb["id"] for lb in reply["lobbies"]]
        pages += 1
        cursor = reply["next_cursor"]
        if cursor is None:
            break
        assert len(reply["lobbies"]) == (limit or LOBBY_LIST_LIMIT)
    assert seen == sorted(public)
    assert pages == max(1, -(-len(public) // (limit or LOBBY_LIST_LIMIT)))


def test_pages_are_stable_while_lobbies_come_and_go() -> None:
    hub, public = _hub(120)
    first = _page(hub, limit=30)
    before = {lb["id"] for lb in first["lobbies"]}
    # delete lobbies already listed and the cursor's own lobby, create new ones: the rest is neither skipped
    # nor repeated
    for lid in list(before):
        del hub.lobbies[lid]
    for i in range(40):
        hub.request(1, LobbyCreate(name=f"new{i}"), 0.0)
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor is not None:
        reply = _page(hub, cursor=cursor, limit=30)
        rest += [lb["id"] for lb in reply["lobbies"]]
        cursor = reply["next_cursor"]
    assert not before & set(rest)
    assert set(public - before) <= set(rest)
    assert rest == sorted(rest)


def test_reply_keeps_compatible_fields_and_is_bounded() -> None:
    hub, _ = _hub(3000)
    reply = _page(hub)
    assert set(reply) == {"type", "lobbies", "next_cursor"}
    assert set(reply["lobbies"][0]) == {"id", "name", "private", "has_password", "members", "max_members",
                                        "persistent"}
    biggest = _page(hub, limit=LOBBY_LIST_MAX)
    assert len(json.dumps(biggest)) < 20_000  # a 20-byte request can no longer buy a megabyte


@pytest.mark.parametrize("fields", ['"limit":0', f'"limit":{LOBBY_LIST_MAX + 1}', '"limit":"5"', '"cursor":""',
                                    '"cursor":' + json.dumps("x" * 65), '"cursor":5'])
def test_bad_paging_fields_are_validation_errors(fields: str) -> None:
    with pytest.raises(ValidationError) as info:
        protocol.validate(protocol.decode('{"type":"lobby.list",' + fields + "}"))
    assert info.value.code == "invalid_message"
    assert info.value.field in ("limit", "cursor")


def test_unknown_cursor_still_pages() -> None:
    hub, public = _hub(30)
    reply = _page(hub, cursor="l_0", limit=100)
    assert [lb["id"] for lb in reply["lobbies"]] == sorted(public)
    assert _page(hub, cursor="zzz")["lobbies"] == []
