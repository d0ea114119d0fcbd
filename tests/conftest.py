"""Shared fixtures: every test that uses them runs on Trio's autojump mock clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from voicebot.server import Server
from voicebot.testing import open_test_server

pytest_plugins = [
    "voicebot.testing.pytest_plugin",  # voicebot_seed, fault_plan, voicebot_server
    "voicebot.testing.engine_fixtures",  # postgres_server, redis_server (real engines, session-scoped)
]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """An in-process server (no listener; clients connect through memory streams).

    pytest-trio only honours a clock fixture requested by the test function itself, so every test using
    this fixture must also take ``autojump_clock``.
    """
    async with open_test_server(seed=1) as srv:
        yield srv


@pytest.fixture
def quiet_voicebot_logs() -> Iterator[None]:
    """Silence the ``voicebot`` loggers for one test (runs that count thousands of handled errors, not print them)."""
    logger = logging.getLogger("voicebot")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    yield
    logger.setLevel(level)

