"""Durability through the real server process: restart, resume after restart, SIGKILL mid-stream."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import trio

from voicebot.client import RemoteError, connect
from voicebot.testing import serve_process

pytestmark = pytest.mark.slow

ADMIN = "durability-admin"


def serving(db: Path) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """``voicebot serve`` on a free port with ``db`` and the test admin token."""
    return serve_process("--db", str(db), "--log-level", "warning", "--admin-token", ADMIN)


async def test_restart_keeps_lobbies_names_and_resumable_sessions(tmp_path: Path) -> None:
    db = tmp_path / "voicebot.db"
    with serving(db) as (proc, url):
        async with connect(url) as a, connect(url) as b:
            await a.hello("Ada")
            await a.request("name.register", password="ada-lovelace")
            kept = await a.create_lobby("kept", persistent=True, password="door-code")
            gone = await a.create_lobby("ephemeral")
            await a.join(kept["id"], password="door-code")
            await b.hello("Bob")
            await b.join(gone["id"])
            token = a.resume_token
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 0
    with serving(db) as (_, url):
        async with connect(url) as c:
            with pytest.raises(RemoteError) as info:
                await c.hello("ada")
            assert info.value.code == "auth_failed"
        async with connect(url) as a2:
            welcome = await a2.hello("Ada", resume=token)
            assert welcome["resumed"] is True and welcome["lobby_id"] == kept["id"]
            assert welcome["lobby"]["has_password"] is True and welcome["lobby"]["persistent"] is True
            listed = {lb["id"] for lb in (await a2.request("lobby.list"))["lobbies"]}
            assert kept["id"] in listed and gone["id"] not in listed
        async with connect(url) as d:
            await d.hello("Dora")
            with pytest.raises(RemoteError) as info:
                await d.join(kept["id"], password="wrong")
            assert info.value.code == "wrong_password"
            assert (await d.join(kept["id"], password="door-code"))["lobby"]["id"] == kept["id"]


class Progress:
    """Acknowledged writes so far, and an event that fires when ``target`` of them were acknowledged."""

    def __init__(self, target: int) -> None:
        self.lobbies: list[str] = []
        self.names: list[str] = []
        self.target = target
        self.reached = trio.Event()

    def acked(self) -> None:
        if len(self.lobbies) + len(self.names) >= self.target:
            self.reached.set()


async def _write_stream(url: str, progress: Progress, prefix: str, register_every: int) -> None:
    """Create persistent lobbies and register names until the server dies (only acknowledged ones count)."""
    try:
        async with connect(url) as client:
            for i in range(10_000):
                if i % register_every == register_every - 1:
                    async with connect(url) as named:  # a fresh name to protect
                        await named.hello(f"{prefix}n{i}")
                        await named.request("name.register", password="registered!")
                        progress.names.append(f"{prefix}n{i}")
                else:
                    if i == 0:  # persistent lobbies (unquota'd) need admin rights or a registered name
                        await client.hello(f"{prefix}w", admin_token=ADMIN)
                    lobby = await client.create_lobby(f"{prefix}-{i}", persistent=True)
                    progress.lobbies.append(lobby["id"])
                progress.acked()
    except Exception:  # the server was killed mid-stream: that is the point
        return


async def crash_twice_and_verify(
    open_server: Callable[[], AbstractContextManager[tuple[subprocess.Popen[str], str]]], kill_at: int,
) -> tuple[list[str], list[str]]:
    """SIGKILL the server opened by ``open_server`` once ``kill_at`` writes were acknowledged (more in flight),
    twice; then check on a third start that every acknowledged lobby and name is there. Returns them."""
    rounds = [Progress(kill_at), Progress(kill_at)]
    for round_, progress in enumerate(rounds):
        with open_server() as (proc, url):
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for writer in range(3):
                        nursery.start_soon(_write_stream, url, progress, f"r{round_}c{writer}", 10)
                    await progress.reached.wait()
                    proc.send_signal(signal.SIGKILL)
    lobbies = [lid for p in rounds for lid in p.lobbies]
    names = [name for p in rounds for name in p.names]
    with open_server() as (_, url):
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
    return lobbies, names


@pytest.mark.parametrize("kill_at", [3, 25, 80])
async def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, kill_at: int) -> None:
    """SIGKILL once ``kill_at`` writes were acknowledged (more are in flight), twice; nothing acknowledged is lost."""
    db = tmp_path / "crash.db"
    lobbies, names = await crash_twice_and_verify(lambda: serving(db), kill_at)
    print(f"kill at {kill_at}: {len(lobbies)} lobbies and {len(names)} names acknowledged over 2 kills")
