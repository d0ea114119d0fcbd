"""Durability through the real server process: restart, resume after restart, SIGKILL mid-stream."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from voicebot.client import RemoteError, connect

pytestmark = pytest.mark.slow

ADMIN = "durability-admin"


@contextmanager
def serving(db: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``voicebot serve`` on a free port with ``db``; yield (process, ws url)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "serve", "--port", "0", "--db", str(db), "--log-level", "warning",
         "--admin-token", ADMIN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"ws://\S+/ws", line)
    if not match:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    try:
        yield proc, match.group(0)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


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


async def _write_stream(url: str, acked: dict[str, list[str]], prefix: str) -> None:
    """Create persistent lobbies (and register a name now and then) until the server dies."""
    try:
        async with connect(url) as client:
            await client.hello(f"{prefix}w")
            await client.request("name.register", password="registered!")
            acked["names"].append(f"{prefix}w")
            for i in range(10_000):
                lobby = await client.create_lobby(f"{prefix}-{i}", persistent=True)
                acked["lobbies"].append(lobby["id"])
    except Exception:  # the server was killed mid-stream: that is the point
        return


@pytest.mark.parametrize("kill_after", [0.3, 0.7, 1.2])
async def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, kill_after: float) -> None:
    db = tmp_path / "crash.db"
    acked: dict[str, list[str]] = {"lobbies": [], "names": []}
    for round_ in range(2):  # kill, restart, kill again: writes from both rounds must survive
        with serving(db) as (proc, url):
            async with trio.open_nursery() as nursery:
                for writer in range(3):
                    nursery.start_soon(_write_stream, url, acked, f"r{round_}c{writer}")
                await trio.sleep(kill_after)
                proc.send_signal(signal.SIGKILL)
    assert acked["lobbies"], "no write was acknowledged before the kill"
    with serving(db) as (_, url):
        async with connect(url) as check:
            await check.hello("checker", admin_token=ADMIN)
            listed = {lb["id"] for lb in (await check.request("lobby.list"))["lobbies"]}
            missing = [lid for lid in acked["lobbies"] if lid not in listed]
            assert not missing, f"{len(missing)} of {len(acked['lobbies'])} acknowledged lobbies lost"
        for name in acked["names"]:
            async with connect(url) as probe:
                with pytest.raises(RemoteError) as info:
                    await probe.hello(name)
                assert info.value.code == "auth_failed", name
