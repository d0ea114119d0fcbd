"""Durability of the real server process on PostgreSQL: restart keeps lobbies, names and sessions; SIGKILL
after acknowledged writes loses nothing; the database password never reaches the server's output."""

from __future__ import annotations

import signal
import subprocess
from contextlib import AbstractContextManager

import pytest
import trio

from voicebot.client import RemoteError, connect
from voicebot.testing import PostgresEngine, serve_process

from .test_durability import ADMIN, crash_twice_and_verify

pytestmark = pytest.mark.slow


def serving(url: str) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """``voicebot serve --db postgresql://…`` on a free port (info logging: the password must not show)."""
    return serve_process("--db", url, "--log-level", "info", "--admin-token", ADMIN)


def _output(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=10)
    return (out or "") + (err or "")


async def test_restart_keeps_lobby_name_and_session(postgres_server: PostgresEngine) -> None:
    db = postgres_server.new_database("serve")
    with serving(db) as (proc, url):
        async with connect(url) as a:
            await a.hello("Ada")
            await a.request("name.register", password="ada-lovelace")
            kept = await a.create_lobby("kept", persistent=True, password="door-code")
            await a.join(kept["id"], password="door-code")
            token = a.resume_token
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 0
        assert postgres_server.password not in _output(proc)
    with serving(db) as (proc, url):
        async with connect(url) as c:
            with pytest.raises(RemoteError) as info:
                await c.hello("ADA")
            assert info.value.code == "auth_failed"
        async with connect(url) as a2:
            welcome = await a2.hello("Ada", resume=token)
            assert welcome["resumed"] is True and welcome["lobby_id"] == kept["id"]
            assert welcome["lobby"]["persistent"] is True
            stats = await a2.request("lobby.list")
            assert kept["id"] in {lb["id"] for lb in stats["lobbies"]}
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 10)
        assert postgres_server.password not in _output(proc)


async def test_sigkill_loses_no_acknowledged_write(postgres_server: PostgresEngine) -> None:
    db = postgres_server.new_database("crash")
    lobbies, _names = await crash_twice_and_verify(lambda: serving(db), 25)
    assert lobbies  # names need an argon2 hash each, so a kill may come before the first one
    rows = postgres_server.execute("SELECT count(*) FROM lobbies WHERE persistent", database=db.rsplit("/", 1)[1])
    assert int(rows[0][0]) >= len(lobbies)  # type: ignore[call-overload]
