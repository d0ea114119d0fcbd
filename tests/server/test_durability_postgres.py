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

from .test_durability import ADMIN, Progress, _write_stream

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
    rounds = [Progress(25), Progress(25)]
    for round_, progress in enumerate(rounds):
        with serving(db) as (proc, url):
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for writer in range(3):
                        nursery.start_soon(_write_stream, url, progress, f"r{round_}c{writer}", 10)
                    await progress.reached.wait()
                    proc.send_signal(signal.SIGKILL)
    lobbies = [lid for p in rounds for lid in p.lobbies]
    names = [name for p in rounds for name in p.names]
    assert lobbies  # names need an argon2 hash each, so a kill may come before the first one
    with serving(db) as (_, url):
        async with connect(url) as check:
            await check.hello("checker", admin_token=ADMIN)
            listed = {lb["id"] for lb in await check.list_lobbies()}  # every page: ids sort anywhere
            missing = [lid for lid in lobbies if lid not in listed]
            assert not missing, f"{len(missing)} of {len(lobbies)} acknowledged lobbies lost"
        for name in names:
            async with connect(url) as probe:
                with pytest.raises(RemoteError) as info:
                    await probe.hello(name)
                assert info.value.code == "auth_failed", name
    rows = postgres_server.execute("SELECT count(*) FROM lobbies WHERE persistent", database=db.rsplit("/", 1)[1])
    assert int(rows[0][0]) >= len(lobbies)  # type: ignore[call-overload]
