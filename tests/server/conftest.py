"""Fixtures shared by the server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from voicebot.server import Server
from voicebot.testing import settings_for_tests
from voicebot.testing._rawws import RawWebSocket

MAX_MESSAGE_SIZE = 4096
"""``max_message_size`` of :func:`tcp_server` (small, so oversized frames are cheap to send)."""


@pytest.fixture
async def tcp_server() -> AsyncIterator[Server]:
    """A real server listening on 127.0.0.1 (raw-frame tests over TCP), ``max_message_size`` 4 KiB."""
    server = Server(settings_for_tests(max_message_size=MAX_MESSAGE_SIZE, host="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server
        server.shutdown()


async def assert_answers_ping(ws: RawWebSocket, request_id: int) -> None:
    """``ws`` still gets a ``pong`` for a ``ping`` within 5 s (a neighbour untouched by another client's close)."""
    await ws.send_text(f'{{"type":"ping","id":{request_id}}}')
    with trio.fail_after(5):
        got = await ws.read()
    assert got is not None and b"pong" in got[1]
