"""Fixtures for the web client's end-to-end tests in real headless Chromium (Debian's ``chromium``, driven by
Playwright for Python with ``executable_path``; ``scripts/test`` installs the package when it is missing).

One browser per test module (a fresh context per page keeps pages apart); a real ``voicebot serve`` per test,
which also serves the page.

Playwright's sync API runs an asyncio loop in greenlets of the calling thread; in the main thread it collides with
what other suites leave behind there and can in turn confuse later ``trio.run`` calls. So every browser test —
its fixtures and its body — runs in one dedicated thread, and Playwright starts on a stock asyncio loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

CHROMIUM = "/usr/bin/chromium"
# The flags headless Chromium needs for WebRTC with fake devices (see the team's design notes, browser section).
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
_BROWSER_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")


def in_browser_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in the browser tests' thread and return its result (or raise its exception)."""
    return _BROWSER_THREAD.submit(fn, *args, **kwargs).result()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool:
    """Run each test function of this folder in the browser thread."""
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    in_browser_thread(pyfuncitem.obj, **args)
    return True


def _start_playwright(sync_playwright: Callable[[], Any]) -> Any:
    """Start Playwright on a plain asyncio loop: trio-asyncio (imported by the media code) installs a global event
    loop policy whose new loops are its own, which Playwright cannot drive. The stock policy is restored at once
    (Playwright keeps the loop it made)."""
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        return sync_playwright().start()
    finally:
        asyncio.set_event_loop_policy(policy)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests need it

    pw = in_browser_thread(_start_playwright, sync_playwright)
    try:
        chromium = in_browser_thread(pw.chromium.launch, executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            in_browser_thread(chromium.close)
    finally:
        in_browser_thread(pw.stop)


def free_port() -> int:
    """A TCP port free right now (for a server that must come back on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_page(ws_url, **params)`` → the page ``voicebot serve`` serves beside ``ws_url`` (same origin: the
    page finds /ws by itself), in a fresh browser context (its own sessionStorage), with page errors collected
    in ``page.errors``; all closed after the test."""
    contexts: list[Any] = []

    def _open(ws_url: str, width: int = 1280, height: int = 900, **params: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        base = ws_url.replace("ws://", "http://", 1).removesuffix("/ws")
        page.goto(f"{base}/?{urlencode({k: str(v) for k, v in params.items()})}")
        return page

    yield _open
    for context in contexts:
        in_browser_thread(context.close)


def shot(page: Any, name: str) -> None:
    """Save a screenshot of a main state under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
