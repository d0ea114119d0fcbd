"""``--ice-servers``: parsed strictly, told to browsers in ``welcome.ice_servers`` (the web client passes them to
every RTCPeerConnection)."""

from __future__ import annotations

import attrs
import pytest

from voicebot.server import Settings
from voicebot.server._settings import parse_ice_servers
from voicebot.testing import open_client, open_test_server, settings_for_tests


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("  ", []),
    ("stun:stun.example.org:3478", [{"urls": "stun:stun.example.org:3478"}]),
    ("stun:a.example, turns:b.example:5349", [{"urls": "stun:a.example"}, {"urls": "turns:b.example:5349"}]),
    ('[{"urls": ["turn:t.example"], "username": "u", "credential": "p", "extra": 1}]',
     [{"urls": ["turn:t.example"], "username": "u", "credential": "p"}]),
])
def test_parse(text: str, expected: list[dict[str, object]]) -> None:
    assert parse_ice_servers(text) == expected


@pytest.mark.parametrize("text", [
    "http://stun.example", "stun:a,https://b", "[not json", '["stun:a"]', '[{"urls": []}]', '[{"urls": 5}]',
    '[{"urls": "turn:t", "username": 1}]', '[{"username": "u"}]',
])
def test_malformed_values_stop_the_server_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match="ice_servers"):
        Settings(ice_servers=text)


async def test_welcome_carries_the_configured_ice_servers(autojump_clock: object) -> None:
    settings = attrs.evolve(settings_for_tests(), ice_servers="stun:stun.example.org")
    async with open_test_server(settings) as server, open_client(server) as client:
        welcome = await client.hello("alice")
    assert welcome["ice_servers"] == [{"urls": "stun:stun.example.org"}]


async def test_welcome_has_no_ice_servers_by_default(autojump_clock: object) -> None:
    async with open_test_server() as server, open_client(server) as client:
        assert (await client.hello("alice"))["ice_servers"] == []
