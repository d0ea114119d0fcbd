"""Fixtures shared by the server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from voicebot.server import Server
from voicebot.testing import settings_for_tests

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
