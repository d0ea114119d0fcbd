"""Fixtures for store tests: a deterministic wall clock and stores on every backend.

``any_store`` runs each behaviour test on SQLite (file and ``:memory:``) and on PostgreSQL (a fresh schema
in the session's real server, see ``voicebot.testing.engine_fixtures``); ``backend`` gives a location plus
a way to read committed data through a brand-new connection, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_support import Backend, FakeClock

from voicebot.store import SQLiteStore, Store, open_store


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


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(db_path))
    return Backend("postgresql", request.getfixturevalue("postgres_server").new_schema())


@pytest.fixture
async def backend_store(backend: Backend, clock: FakeClock) -> AsyncIterator[Store]:
    async with backend.open(now=clock) as s:
        yield s


@pytest.fixture(params=["file", "memory", "postgresql"])
async def any_store(request: pytest.FixtureRequest, db_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    if request.param == "postgresql":
        location = request.getfixturevalue("postgres_server").new_schema()
    else:
        location = str(db_path) if request.param == "file" else ":memory:"
    async with Backend("any", location).open(now=clock) as s:
        yield s
