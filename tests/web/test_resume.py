"""Resume in the browser: a page reload within the grace comes back into the same lobby (and renegotiates with
people and bots), and a server restart mid-call shows "reconnecting", then resumes into the same persistent lobby."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from voicebot.testing import serve_process

from ._pages import WAIT_MS, create_lobby, login, register_name, state, wait_hears, wait_inbound, wait_member
from .conftest import free_port, shot

pytestmark = pytest.mark.slow  # a real server process and a real browser each


def test_reload_resumes_into_the_same_lobby_with_people_and_bots(open_page: Any) -> None:
    with serve_process("--db", ":memory:", "--media-allow-loopback", "true") as (_proc, ws):
        alice = open_page(ws, fake_tone=440)
        login(alice, "alice")
        lobby_id = create_lobby(alice, "reload")
        bob = open_page(ws, fake_tone=660, lobby=lobby_id, name="bob", join=1)
        bob.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
        a, b = state(alice)["peerId"], state(bob)["peerId"]
        bob.select_option("#bot-select", "echo")
        bob.click("#bot-add")
        echo = bob.wait_for_selector(".tile[data-kind=bot]", timeout=WAIT_MS).get_attribute("data-peer-id")
        wait_hears(bob, echo, 660)
        wait_hears(bob, a, 440)

        bob.reload()  # same tab: the resume token is in sessionStorage
        bob.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
        after = state(bob)
        assert after["peerId"] == b and after["lobbyId"] == lobby_id
        assert "resumed" in bob.inner_text("#conn-status").lower()
        # The reloaded page starts over with everyone (bye + offer): people and the bot are heard again.
        wait_member(bob, a)
        wait_member(bob, echo)
        wait_hears(bob, a, 440)
        wait_hears(bob, echo, 660)
        wait_hears(alice, b, 660)
        assert [m["peer_id"] for m in state(alice)["members"]].count(b) == 1
        assert alice.errors == [] and bob.errors == []


def test_server_restart_mid_call_resumes_into_the_same_persistent_lobby(open_page: Any, tmp_path: Path) -> None:
    port = free_port()
    args = ("--port", str(port), "--db", str(tmp_path / "voicebot.db"), "--media-allow-loopback", "true")
    with serve_process(*args) as (proc, ws):
        register_name(ws, "alice", "alice's password")  # persistent lobbies: registered names (or admins) only
        alice = open_page(ws, fake_tone=440)
        login(alice, "alice", "alice's password")
        lobby_id = create_lobby(alice, "persistent call", persistent=True)
        bob = open_page(ws, fake_tone=660, lobby=lobby_id, name="bob", join=1)
        bob.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
        a, b = state(alice)["peerId"], state(bob)["peerId"]
        wait_hears(alice, b, 660)
        wait_hears(bob, a, 440)

        proc.send_signal(signal.SIGTERM)  # graceful stop: clients get 1001, sessions are saved
        proc.wait(15)
        for page in (alice, bob):
            page.wait_for_selector("#conn-status[data-state=reconnecting]", timeout=WAIT_MS)
        shot(alice, "06-reconnecting")
        # The people keep hearing each other meanwhile: media flows peer to peer, not through the hub.
        wait_hears(bob, a, 440)

    with serve_process(*args):
        for page in (alice, bob):
            page.wait_for_selector("#conn-status[data-state=connected]", timeout=30_000)
        for page, me, other in ((alice, a, b), (bob, b, a)):
            now = state(page)
            assert now["peerId"] == me and now["lobbyId"] == lobby_id
            wait_member(page, other)
        assert "resumed" in alice.inner_text("#conn-status").lower()
        wait_hears(alice, b, 660)
        wait_hears(bob, a, 440)
        before = wait_inbound(alice, b)["packetsReceived"]
        assert wait_inbound(alice, b, before + 25)["packetsReceived"] > before
        # Signaling works again: chat crosses the restarted hub.
        alice.fill("#chat-text", "still here")
        alice.press("#chat-text", "Enter")
        bob.wait_for_selector("#chat-log li:has-text('still here')", timeout=WAIT_MS)
        shot(alice, "07-resumed-after-restart")
        assert alice.errors == [] and bob.errors == []
