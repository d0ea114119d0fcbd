"""Driving the web client like a user (clicks and typing) and probing what a page hears."""

from __future__ import annotations

import time
from typing import Any

import trio

from voicebot.client import connect

WAIT_MS = 15_000
"""Bound of every wait on the page (media setup over loopback takes well under a second)."""


def register_name(ws: str, name: str, password: str) -> None:
    """Register ``name`` with the hub at ``ws`` (the page has no control for it; the Python client does)."""

    async def register() -> None:
        async with connect(ws) as client:
            await client.hello(name)
            await client.request("name.register", password=password)

    trio.run(register)


def login(page: Any, name: str, password: str | None = None) -> None:
    """Log in as a person would; with ``password`` (a registered name) answer the password field it asks for."""
    page.fill("#name", name)
    page.click("#connect")
    if password is not None:
        page.wait_for_selector("#password-field:not([hidden])", timeout=WAIT_MS)
        page.fill("#password", password)
        page.click("#connect")
    page.wait_for_selector("#conn-status[data-state=connected]", timeout=WAIT_MS)


def create_lobby(page: Any, name: str, *, persistent: bool = False, password: str | None = None) -> str:
    """Create a lobby with the form (the page joins it) and return its id."""
    page.wait_for_selector("#lobby-panel:not([hidden])", timeout=WAIT_MS)
    page.fill("#lobby-name", name)
    if persistent:
        page.check("#lobby-persistent")
    if password:
        page.fill("#lobby-password", password)
    page.click("#create-button")
    page.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
    return str(page.evaluate("voicebot.state.lobbyId"))


def state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("voicebot.state")
    return result


def wait_member(page: Any, peer_id: str, link: str | None = "connected") -> None:
    """Wait until ``peer_id`` is a member (and its peer connection is in state ``link``)."""
    page.wait_for_function(
        "([id, link]) => voicebot.state.members.some((m) => m.peer_id === id && (!link || m.link === link))",
        arg=[peer_id, link], timeout=WAIT_MS, polling=100)


def wait_hears(page: Any, peer_id: str, hz: float, *, tolerance: float = 15.0) -> dict[str, float]:
    """Wait until the strongest frequency received from ``peer_id`` is ``hz`` (AnalyserNode FFT) and loud."""
    page.wait_for_function(
        """([id, hz, tol]) => {
             const d = voicebot.dominantFrequency(id);
             return d !== null && Math.abs(d.hz - hz) <= tol && d.db > -60;
           }""", arg=[peer_id, hz, tolerance], timeout=WAIT_MS, polling=100)
    found: dict[str, float] = page.evaluate("(id) => voicebot.dominantFrequency(id)", peer_id)
    return found


def wait_inbound(page: Any, peer_id: str, packets: int = 25) -> dict[str, Any]:
    """Wait until getStats shows at least ``packets`` inbound audio packets from ``peer_id``."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        stats: dict[str, Any] | None = page.evaluate("(id) => voicebot.inboundAudio(id)", peer_id)
        if stats is not None and stats["packetsReceived"] >= packets:
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"no inbound audio from {peer_id}: {stats}")
        page.wait_for_timeout(100)
