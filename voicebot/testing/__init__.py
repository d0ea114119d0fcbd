"""Tools for testing voicebot and code built on it: in-process servers on Trio's mock clock, simulated clients.

Determinism: :func:`deterministic_scheduling` (Trio's scheduler) and :func:`make_deterministic` (the hub's
tokens and timestamps). The pytest plugin (seed / fault-plan / server fixtures and replay hints on failure)
is :mod:`voicebot.testing.pytest_plugin`; enable it with ``pytest_plugins = ["voicebot.testing.pytest_plugin"]``.
Real engines (PostgreSQL, redis-server) on loopback: :func:`run_postgres`, :func:`run_redis`, and the
session fixtures of :mod:`voicebot.testing.engine_fixtures`.
"""

from ._determinism import EPOCH, deterministic_scheduling, make_deterministic
from ._engines import EngineUnavailable, PostgresEngine, RedisEngine, free_port, run_postgres, run_redis
from ._harness import FakePasswordHasher, FreezableStream, open_client, open_test_server, settings_for_tests
from ._process import serve_process

__all__ = [
    "EPOCH",
    "EngineUnavailable",
    "FakePasswordHasher",
    "FreezableStream",
    "PostgresEngine",
    "RedisEngine",
    "deterministic_scheduling",
    "free_port",
    "make_deterministic",
    "open_client",
    "open_test_server",
    "run_postgres",
    "run_redis",
    "serve_process",
    "settings_for_tests",
]
