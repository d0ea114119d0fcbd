"""``voicebot serve`` with its local worker in a child process (the default): a real serve process, a real child,
real signals (real clock)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from voicebot.client import Client, connect
from voicebot.errors import VoiceBotError
from voicebot.server import Server
from voicebot.testing import FakePasswordHasher, child_pids, settings_for_tests
from voicebot.workers import BotHubSettings, WorkerProcessFailed, install_bot_hub, run_worker_process

pytestmark = pytest.mark.slow

_CHILD = "voicebot.workers._child"
ADMIN = "local-process-admin"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _worker_child(serve_pid: int, timeout: float = 30.0, other_than: int | None = None) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in child_pids(serve_pid) if _CHILD in _cmdline(p) and p != other_than]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no local worker process")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _serve_env() -> dict[str, str]:
    env = {**os.environ, "VOICEBOT_LOG_LEVEL": "info", "VOICEBOT_ADMIN_TOKEN": ADMIN}
    env.pop("VOICEBOT_LOCAL_WORKER_MODE", None)
    return env


@contextmanager
def _serve(*extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = _serve_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "serve", "--port", "0", "--db", ":memory:", "--local-worker", "2",
         "--media-allow-loopback", "true", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (ws://\S+/ws)", line)
        assert match, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def _wait_bot_add(client: Client, bot: str, timeout: float) -> dict[str, Any]:
    """``bot.add`` until a worker takes it (after a restart the new child registers within a few seconds)."""
    with trio.fail_after(timeout):
        while True:
            try:
                return await client.request("bot.add", bot=bot, timeout=15)
            except VoiceBotError as exc:
                if exc.code not in ("bot_unknown", "bot_capacity", "bot_start_failed", "worker_disconnected"):
                    raise
                await trio.sleep(0.2)


async def test_a_killed_worker_process_is_restarted_and_its_bots_are_reported_gone() -> None:
    with _serve() as (proc, url):
        child = _worker_child(proc.pid)
        async with connect(url) as alice:
            await alice.hello("alice")
            lobby = await alice.create_lobby("procs")
            await alice.join(lobby["id"])
            added = await alice.request("bot.add", bot="echo", timeout=30)
            await alice.next_event("peer.joined", timeout=15)
            os.kill(child, signal.SIGKILL)
            left = await alice.next_event("peer.left", timeout=15)
            assert left == {"type": "peer.left", "lobby_id": lobby["id"], "peer_id": added["peer_id"],
                            "reason": "disconnected"}
            assert _worker_child(proc.pid, other_than=child) != child  # a new child
            again = await _wait_bot_add(alice, "echo", timeout=45)
            joined = await alice.next_event("peer.joined", timeout=15)
            assert joined["peer"]["peer_id"] == again["peer_id"] != added["peer_id"]
            assert (await alice.request("ping"))["type"] == "pong"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert "local worker process ended (killed by SIGKILL)" in err
    assert "local-worker| " in err  # the child's log lines, prefixed
    assert _gone(child, 1)


async def test_stopping_serve_stops_the_worker_process_and_a_killed_serve_orphans_nothing() -> None:
    with _serve() as (proc, _url):
        child = _worker_child(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert _gone(child, 5)
    with _serve() as (proc, _url):
        child = _worker_child(proc.pid)
        proc.kill()  # no chance to clean up: the child sees its channel close
        proc.wait(10)
        assert _gone(child, 15)


def test_the_token_is_not_on_the_command_line_nor_in_the_environment() -> None:
    with _serve() as (proc, _url):
        child = _worker_child(proc.pid)
        cmdline = _cmdline(child)
        with open(f"/proc/{child}/environ", "rb") as f:
            environ = dict(item.split("=", 1) for item in f.read().decode().split("\0") if "=" in item)
        assert re.fullmatch(r"\S+ -m voicebot\.workers\._child --control-fd \d+ ", cmdline), cmdline
        assert environ == {**_serve_env(), "PYTHONUNBUFFERED": "1"}  # nothing added but unbuffered output


async def test_admin_stats_show_the_worker_process_assistants() -> None:
    with _serve() as (_proc, url):
        async with connect(url) as alice, connect(url) as admin:
            await alice.hello("alice")
            await admin.hello("boss", admin_token=ADMIN)
            lobby = await alice.create_lobby("stats")
            await alice.join(lobby["id"])
            added = await alice.request("bot.add", bot="assistant", timeout=60)
            with trio.fail_after(30):
                while True:
                    stats = (await admin.request("admin.stats"))["stats"]
                    job = stats["assistants"].get(added["job_id"])
                    if job is not None:
                        break
                    await trio.sleep(0.5)
            assert job["peer_id"] == added["peer_id"] and job["lobby_id"] == lobby["id"]


async def test_a_first_worker_process_that_cannot_start_stops_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for_tests()
    server = Server(settings, passwords=FakePasswordHasher(), listen=False)
    bot_hub = install_bot_hub(server, BotHubSettings())
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the child exits at once, before registering
    with trio.fail_after(30), pytest.RaisesGroup(pytest.RaisesExc(WorkerProcessFailed, match="exit code 1"),
                                                 flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            await nursery.start(lambda task_status: run_worker_process(
                server, bot_hub, settings, capacity=1, task_status=task_status))


async def test_thread_mode_runs_the_worker_inside_serve() -> None:
    with _serve("--local-worker-mode", "thread") as (proc, url):
        async with connect(url) as alice:
            await alice.hello("alice")
            lobby = await alice.create_lobby("threads")
            await alice.join(lobby["id"])
            added = await alice.request("bot.add", bot="echo", timeout=30)
            joined = await alice.next_event("peer.joined", timeout=15)
            assert joined["peer"]["peer_id"] == added["peer_id"]
        assert not [p for p in child_pids(proc.pid) if _CHILD in _cmdline(p)]
