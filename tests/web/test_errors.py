"""Errors render by severity in the page: low inline next to the control (real hub errors: a registered name
without its password, a wrong lobby password), medium as a toast, high and critical as a banner with a working
Reconnect button; the correlation id is always visible."""

from __future__ import annotations

from typing import Any

import pytest

from voicebot.testing import serve_process

from ._pages import WAIT_MS, create_lobby, login, register_name, state
from .conftest import shot

pytestmark = pytest.mark.slow  # a real server process and a real browser each

SERVE = ("--db", ":memory:", "--media-allow-loopback", "true")


def test_low_errors_are_inline_next_to_their_control(open_page: Any) -> None:
    with serve_process(*SERVE) as (_proc, ws):
        register_name(ws, "erin", "correct horse")
        page = open_page(ws, fake_tone=440)
        page.fill("#name", "erin")
        page.click("#connect")
        # auth_failed: the password field appears, the error is inline in the login form with its correlation id.
        error = page.wait_for_selector("#login-error:not([hidden])[data-code=auth_failed]", timeout=WAIT_MS)
        assert error.get_attribute("data-severity") == "low"
        assert page.is_visible("#password")
        assert page.get_attribute("#login-error .error-meta", "data-cid")
        assert page.locator("#toasts .toast").count() == 0 and page.is_hidden("#banner")
        shot(page, "08-error-low-auth")
        page.fill("#password", "correct horse")
        page.click("#connect")
        page.wait_for_selector("#conn-status[data-state=connected]", timeout=WAIT_MS)
        lobby_id = create_lobby(page, "locked", password="sesame")

        # wrong_password on the invite flow: inline next to the invite's join button, then joining works.
        guest = open_page(ws, fake_tone=660, lobby=lobby_id, name="guest", join=1)
        error = guest.wait_for_selector("#invite-error:not([hidden])[data-code=wrong_password]", timeout=WAIT_MS)
        assert "(wrong_password · id " in error.inner_text()
        assert guest.is_visible("#invite-password")
        guest.fill("#invite-password", "sesame")
        guest.click("#invite-join")
        guest.wait_for_selector("#call:not([hidden])", timeout=WAIT_MS)
        assert state(guest)["lobbyId"] == lobby_id
        assert page.errors == [] and guest.errors == []


def test_medium_toast_high_and_critical_banner_with_reconnect(open_page: Any) -> None:
    with serve_process(*SERVE) as (_proc, ws):
        page = open_page(ws, fake_tone=440, test=1)
        login(page, "frank")
        create_lobby(page, "errors")
        peer_id = state(page)["peerId"]
        base = {"type": "error", "category": "network", "retryable": True}
        # The rendering path is the one every hub message takes (voicebot.receive feeds the dispatcher).
        page.evaluate("(m) => voicebot.receive(m)", {**base, "code": "timeout", "severity": "medium",
                                                      "message": "operation timed out", "correlation_id": "c0ffee-1.7"})
        toast = page.wait_for_selector("#toasts .toast[data-severity=medium]", timeout=WAIT_MS)
        assert "operation timed out" in toast.inner_text() and "c0ffee-1.7" in toast.inner_text()
        assert page.is_hidden("#banner")
        shot(page, "09-error-medium-toast")

        page.evaluate("(m) => voicebot.receive(m)", {**base, "code": "internal_error", "severity": "high",
                                                      "message": "internal error", "correlation_id": "c0ffee-1.8"})
        banner = page.wait_for_selector("#banner:not([hidden])[data-severity=high]", timeout=WAIT_MS)
        assert "c0ffee-1.8" in banner.inner_text()
        shot(page, "10-error-high-banner")
        page.click("#banner-reconnect")  # reconnects at once and resumes the same session and lobby
        page.wait_for_selector("#banner", state="hidden", timeout=WAIT_MS)
        page.wait_for_selector("#conn-status[data-state=connected]", timeout=WAIT_MS)
        page.wait_for_function("document.querySelector('#conn-text').textContent.includes('resumed')",
                               timeout=WAIT_MS)
        assert state(page)["peerId"] == peer_id and state(page)["lobbyId"] is not None

        page.evaluate("(m) => voicebot.receive(m)", {**base, "code": "database_corrupt", "severity": "critical",
                                                      "category": "persistence", "message": "storage failure",
                                                      "correlation_id": "c0ffee-1.9"})
        banner = page.wait_for_selector("#banner:not([hidden])[data-severity=critical]", timeout=WAIT_MS)
        assert "storage failure" in banner.inner_text() and page.is_visible("#banner-reconnect")
        shot(page, "11-error-critical-banner")
        assert page.errors == []
