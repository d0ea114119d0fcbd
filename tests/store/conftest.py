"""Fixtures for store tests: a deterministic wall clock and stores on disk and in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_support import FakeClock

from voicebot.store import SQLiteStore, open_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "voicebot.db"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    async with open_store(db_path, now=clock) as s:
        yield s


@pytest.fixture(params=["file", "memory"])
async def any_store(request: pytest.FixtureRequest, db_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    path = db_path if request.param == "file" else ":memory:"
    async with open_store(path, now=clock) as s:
        yield s
