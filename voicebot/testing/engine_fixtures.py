"""pytest fixtures for real engines: ``postgres_server`` and ``redis_server`` (session-scoped).

Enable with ``pytest_plugins = ["voicebot.testing.engine_fixtures"]``. Each starts once per test session
(:func:`voicebot.testing.run_postgres` / :func:`voicebot.testing.run_redis`: loopback, free port, temporary
folder, bounded start) and stops at the end. Isolate tests with ``postgres_server.new_schema()`` (cheap) or
``new_database()`` (a whole database, e.g. for a ``voicebot serve`` process), and with a Redis key prefix
or ``redis_server.command("FLUSHALL")``.

When the binaries are missing the tests are skipped with the install command, unless ``CI`` (or
``VOICEBOT_REQUIRE_ENGINES``) is set: there ``scripts/test`` installs them, so a missing engine fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

import pytest

from ._engines import EngineUnavailable, PostgresEngine, RedisEngine, run_postgres, run_redis

__all__ = ["postgres_server", "redis_server"]

_E = TypeVar("_E", PostgresEngine, RedisEngine)


def _unavailable(exc: EngineUnavailable) -> None:
    required = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("CI", "VOICEBOT_REQUIRE_ENGINES"))
    if required:
        pytest.fail(f"{exc} (CI requires the real engines; scripts/test installs them)", pytrace=False)
    pytest.skip(f"{exc}; scripts/test installs it")


def _session_engine(run: Callable[[], AbstractContextManager[_E]]) -> Iterator[_E]:
    """Run one engine for the fixture's lifetime; a missing engine skips (fails under CI, see :func:`_unavailable`)."""
    try:
        manager = run()
        engine = manager.__enter__()
    except EngineUnavailable as exc:
        _unavailable(exc)
        raise
    try:
        yield engine
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresEngine]:
    """A PostgreSQL cluster for this test session (see :func:`voicebot.testing.run_postgres`)."""
    yield from _session_engine(run_postgres)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisEngine]:
    """A ``redis-server`` for this test session (see :func:`voicebot.testing.run_redis`)."""
    yield from _session_engine(run_redis)
