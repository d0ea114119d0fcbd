"""The web client in real headless Chromium against a real ``voicebot serve``: two people hear each other, the
echo and speaker bots, chat, the invite flow, a narrow screen."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from voicebot.client import connect
from voicebot.testing import serve_process

from ._pages import WAIT_MS, create_lobby, login, state, wait_hears, wait_inbound, wait_member
from .conftest import shot

pytestmark = pytest.mark.slow  # a real server process and a real browser each

SERVE = ("--db", ":memory:", "--media-allow-loopback", "true")


def test_two_pages_join_one_lobby_and_hear_each_other(open_page: Any) -> None:
    with serve_process(*SERVE) as (_proc, ws):
        alice = open_page(ws, fake_tone=440)
        shot(alice, "01-login")
        login(alice, "alice")
        shot(alice, "02-lobbies")
        lobby_id = create_lobby(alice, "call")
        invite = alice.evaluate("voicebot.inviteLink()")
        assert f"lobby={lobby_id}" in invite
        alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
        alice.click("#copy-invite")
        alice.wait_for_selector(".toast:has-text('Invite link copied')", timeout=WAIT_MS)
        assert alice.evaluate("navigator.clipboard.readText()") == invite

        bob = open_page(ws, fake_tone=660, lobby=lobby_id, name="bob", join=1)  # the invite flow joins by itself
        bob.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
        a, b = state(alice)["peerId"], state(bob)["peerId"]
        assert state(bob)["lobbyId"] == lobby_id
        wait_member(alice, b)
        wait_member(bob, a)

        # Each page finds the other's tone in the received audio (AnalyserNode FFT), not its own.
        assert abs(wait_hears(alice, b, 660)["hz"] - 660) <= 15
        assert abs(wait_hears(bob, a, 440)["hz"] - 440) <= 15
        assert wait_inbound(alice, b)["packetsReceived"] >= 25
        assert wait_inbound(bob, a)["packetsReceived"] >= 25
        # Tiles show the connection state and a moving level meter.
        alice.wait_for_selector(f'.tile[data-peer-id="{b}"][data-state="connected"]', timeout=WAIT_MS)
        alice.wait_for_function(
            "(id) => document.querySelector(`.tile[data-peer-id='${id}'] meter`).value > 0.3", arg=b,
            timeout=WAIT_MS, polling=100)

        # Chat reaches everyone, the sender included.
        alice.fill("#chat-text", "hello bob")
        alice.press("#chat-text", "Enter")
        for page in (alice, bob):
            page.wait_for_selector("#chat-log li:has-text('hello bob')", timeout=WAIT_MS)
        shot(alice, "03-call-two-people")

        # Mute: the other side's meter for us falls silent; unmute brings the tone back.
        alice.click("#mute")
        assert alice.get_attribute("#mute", "aria-pressed") == "true"
        bob.wait_for_function("(id) => (voicebot.level(id) ?? 1) < 0.1", arg=a, timeout=WAIT_MS, polling=100)
        alice.click("#mute")
        wait_hears(bob, a, 440)

        # Leaving closes the connection on the other side too.
        bob.click("#leave")
        bob.wait_for_selector("#lobby-panel:not([hidden])", timeout=WAIT_MS)
        alice.wait_for_selector(f'.tile[data-peer-id="{b}"]', state="detached", timeout=WAIT_MS)
        assert alice.errors == [] and bob.errors == []


def test_echo_bot_returns_the_pages_own_tone_and_speaker_speaks(open_page: Any) -> None:
    with serve_process(*SERVE) as (_proc, ws):
        page = open_page(ws, fake_tone=523)
        login(page, "carol")
        create_lobby(page, "bots")
        page.wait_for_function("document.querySelectorAll('#bot-select option').length >= 2", timeout=WAIT_MS)

        page.select_option("#bot-select", "echo")
        page.click("#bot-add")
        echo = page.wait_for_selector(".tile[data-kind=bot]", timeout=WAIT_MS)
        echo_id = echo.get_attribute("data-peer-id")
        wait_member(page, echo_id)
        assert abs(wait_hears(page, echo_id, 523)["hz"] - 523) <= 15  # our own tone, back from the bot
        wait_inbound(page, echo_id)

        page.select_option("#bot-select", "speaker")
        page.fill("#bot-opt-text", "Testing one two three, testing.")
        page.fill("#bot-opt-repeat", "1")
        page.click("#bot-add")
        page.wait_for_function("document.querySelectorAll('.tile[data-kind=bot]').length === 2", timeout=WAIT_MS)
        speaker_id = page.evaluate(
            "(echo) => [...document.querySelectorAll('.tile[data-kind=bot]')].map((t) => t.dataset.peerId)"
            ".find((id) => id !== echo)", echo_id)
        wait_member(page, speaker_id)
        page.wait_for_function("(id) => (voicebot.level(id) ?? 0) > 0.3", arg=speaker_id, timeout=WAIT_MS,
                               polling=100)
        shot(page, "04-call-with-bots")

        # A bot without its required option is refused inline, next to the bot form.
        page.select_option("#bot-select", "speaker")
        page.fill("#bot-opt-text", "")
        page.evaluate("document.querySelector('#bot-opt-text').required = false")
        page.click("#bot-add")
        page.wait_for_selector("#bot-error:not([hidden])[data-code=invalid_options]", timeout=WAIT_MS)

        page.click(f'.tile[data-peer-id="{echo_id}"] .remove-bot')
        page.wait_for_selector(f'.tile[data-peer-id="{echo_id}"]', state="detached", timeout=WAIT_MS)
        assert page.errors == []


def test_narrow_screen_real_microphone_live_lobby_list_and_labels(open_page: Any) -> None:
    with serve_process(*SERVE, "--ice-servers", "stun:127.0.0.1:3478") as (_proc, ws):
        page = open_page(ws, width=360, height=740)  # Chromium's fake capture device through getUserMedia
        login(page, "dana")
        assert state(page)["iceServers"] == [{"urls": "stun:127.0.0.1:3478"}]  # from welcome, for every peer
        page.wait_for_selector("#lobby-empty:not([hidden])", timeout=WAIT_MS)
        lobby_id = trio.run(_create_elsewhere, ws, "made elsewhere")
        # The list stays current by itself (no click on Refresh).
        row = page.wait_for_selector(f'form.lobby[data-lobby-id="{lobby_id}"]', timeout=WAIT_MS)
        assert "made elsewhere" in row.inner_text()
        row.query_selector("button").click()
        page.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
        assert state(page)["lobbyId"] == lobby_id
        assert page.eval_on_selector_all("#mic-device option", "(os) => os.map((o) => o.textContent)") != []
        page.wait_for_function("document.querySelector('#mic-level').value > 0", timeout=WAIT_MS, polling=100)
        page.wait_for_function("document.querySelectorAll('#bot-select option').length >= 1", timeout=WAIT_MS)
        # Nothing overflows 360 px, and every visible form control has an accessible name.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea, button')]
            .filter((e) => e.offsetParent !== null)
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
            .map((e) => e.id || e.outerHTML.slice(0, 60))""")
        assert unlabelled == []
        # Keyboard: the chat field sends with Enter.
        page.focus("#chat-text")
        page.keyboard.type("typed")
        page.keyboard.press("Enter")
        page.wait_for_selector("#chat-log li:has-text('typed')", timeout=WAIT_MS)
        shot(page, "05-narrow-360px")
        assert page.errors == []


async def _create_elsewhere(ws: str, name: str) -> str:
    async with connect(ws) as client:
        await client.hello("someone")
        lobby = await client.create_lobby(name)
        return str(lobby["id"])


def test_captions_and_bot_status_render_per_the_contract(open_page: Any) -> None:
    """``caption`` and ``bot.status`` as the voice-assistant contract defines them (fed through the page's message
    dispatcher, attributed to a real bot of the lobby): partial greyed then final solid in place, the speaker
    named (the person a user caption is about; the bot for its own words), the bot's badge."""
    with serve_process(*SERVE) as (_proc, ws):
        page = open_page(ws, fake_tone=440, test=1)
        login(page, "gina")
        lobby_id = create_lobby(page, "captions")
        me = state(page)["peerId"]
        page.select_option("#bot-select", "echo")
        page.click("#bot-add")
        bot = page.wait_for_selector(".tile[data-kind=bot]", timeout=WAIT_MS).get_attribute("data-peer-id")
        base = {"type": "caption", "lobby_id": lobby_id, "from": bot, "name": "echo", "ts": 1}
        feed = "(m) => voicebot.receive(m)"
        page.evaluate(feed, {**base, "role": "user", "about": me, "text": "what time is it", "final": True,
                             "turn_id": "t1"})
        page.evaluate(feed, {**base, "role": "assistant", "about": None, "text": "It is", "final": False,
                             "turn_id": "t1"})
        partial = page.wait_for_selector("#captions li[data-role=assistant]", timeout=WAIT_MS)
        assert partial.get_attribute("data-final") == "false" and "partial" in (partial.get_attribute("class") or "")
        page.evaluate(feed, {"type": "bot.status", "lobby_id": lobby_id, "peer_id": bot, "state": "speaking",
                             "detail": None, "ts": 2})
        page.evaluate(feed, {**base, "role": "assistant", "about": None, "text": "It is noon.", "final": True,
                             "turn_id": "t1"})
        lines = page.eval_on_selector_all(
            "#captions li", "(els) => els.map((e) => [e.dataset.role, e.dataset.final, e.innerText])")
        assert lines == [["user", "true", "gina: what time is it"], ["assistant", "true", "echo: It is noon."]]
        style = page.eval_on_selector("#captions li[data-role=assistant]", "(e) => getComputedStyle(e).fontStyle")
        assert style == "normal"  # final: solid (partials are greyed italics)
        badge = page.wait_for_selector(f'.tile[data-peer-id="{bot}"] .bot-status[data-state=speaking]',
                                       timeout=WAIT_MS)
        assert badge.inner_text() == "speaking"
        shot(page, "12-captions-and-bot-status")
        assert page.errors == []
