"""The real-engine fixtures themselves: isolation helpers, redis-server basics, skip versus fail."""

from __future__ import annotations

import pytest

from voicebot.testing import EngineUnavailable, PostgresEngine, RedisEngine
from voicebot.testing.engine_fixtures import _unavailable

pytestmark = pytest.mark.slow


def test_postgres_runs_unprivileged_with_fsync_and_isolates(postgres_server: PostgresEngine) -> None:
    assert postgres_server.execute("SHOW fsync") == [("on",)]
    assert postgres_server.execute("SHOW listen_addresses") == [("127.0.0.1",)]
    owner = postgres_server.directory.stat().st_uid
    assert owner != 0, "PostgreSQL must not run as root"
    first, second = postgres_server.new_database(), postgres_server.new_database()
    assert first != second
    name = first.rsplit("/", 1)[1]
    postgres_server.execute("CREATE TABLE only_here (x int)", database=name)
    assert postgres_server.execute("SELECT to_regclass('only_here') IS NOT NULL", database=name) == [(True,)]
    assert postgres_server.execute("SELECT to_regclass('only_here') IS NOT NULL",
                                   database=second.rsplit("/", 1)[1]) == [(False,)]
    schema_url = postgres_server.new_schema()
    assert "search_path" in schema_url


def test_redis_answers_and_expires(redis_server: RedisEngine) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("SET", "engine:k", "v", "EX", "30") == b"+OK\r\n"
    assert redis_server.command("GET", "engine:k") == b"$1\r\nv\r\n"
    assert redis_server.command("TTL", "engine:k").startswith(b":")
    assert redis_server.command("CONFIG", "GET", "save").endswith(b"$0\r\n\r\n"), "no RDB snapshots"


@pytest.mark.parametrize(("env", "outcome"), [({}, "skip"), ({"CI": "true"}, "fail"),
                                              ({"VOICEBOT_REQUIRE_ENGINES": "1"}, "fail")])
def test_missing_engine_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], outcome: str
) -> None:
    for var in ("CI", "VOICEBOT_REQUIRE_ENGINES"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    expected = pytest.skip.Exception if outcome == "skip" else pytest.fail.Exception
    with pytest.raises(expected, match="apt-get install redis-server"):
        _unavailable(EngineUnavailable("redis-server not found (install with: apt-get install redis-server)"))


def test_redis_outage_and_return_on_the_same_port() -> None:
    from voicebot.testing import run_redis  # noqa: PLC0415 - a private instance: stopping the shared one would hurt

    with run_redis() as engine:
        engine.command("SET", "k", "v")
        engine.stop()
        with pytest.raises(ConnectionRefusedError):
            engine.command("PING", timeout=1.0)
        engine.start()
        assert engine.command("PING") == b"+PONG\r\n"
        assert engine.command("GET", "k") == b"$-1\r\n", "no persistence: a restarted Redis is empty"
