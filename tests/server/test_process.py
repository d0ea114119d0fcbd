"""The real command: `voicebot serve` as a subprocess on a real TCP port (real clock, bounded)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import trio

from voicebot.client import connect
from voicebot.testing import serve_process

pytestmark = pytest.mark.slow


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    with serve_process("--db", ":memory:", "--log-level", "warning", env={"VOICEBOT_SHUTDOWN_TIMEOUT": "5"}) as run:
        yield run


async def test_two_clients_full_flow_then_sigterm(served: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = served
    with trio.fail_after(20):
        async with connect(url) as alice, connect(url) as bob:
            await alice.hello("alice")
            await bob.hello("bob")
            room = await alice.create_lobby("call")
            await alice.join(room["id"])
            await bob.join(room["id"])
            sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            await alice.request("signal", to=bob.peer_id, kind="offer", sdp=sdp)
            offer = await bob.next_event("signal")
            assert (offer["from"], offer["kind"], offer["sdp"]) == (alice.peer_id, "offer", sdp)
            await bob.signal(alice.peer_id, "answer", sdp=sdp)
            assert (await alice.next_event("signal"))["kind"] == "answer"
            await alice.chat("hello bob")
            assert (await bob.next_event("chat"))["text"] == "hello bob"
            assert (await alice.next_event("chat"))["text"] == "hello bob"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for client in (alice, bob):
                reason = await client.wait_closed(timeout=6)
                assert reason is not None and reason.code == 1001
    code = await trio.to_thread.run_sync(proc.wait, 10)
    assert code == 0
    assert time.monotonic() - started < 5.0


async def test_serve_starts_a_local_worker_with_builtin_bots(served: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = served
    with trio.fail_after(30):
        async with connect(url) as human:
            await human.hello("human")
            bots = {b["name"]: b for b in (await human.request("bot.list"))["bots"]}
            assert {"echo", "speaker"} <= bots.keys() and bots["echo"]["available"] is True
            room = await human.create_lobby("with a bot")
            await human.join(room["id"])
            added = await human.request("bot.add", bot="echo")
            joined = await human.next_event("peer.joined")
            assert joined["peer"] == {"peer_id": added["peer_id"], "name": joined["peer"]["name"], "kind": "bot"}
            offer = await human.next_event("signal")  # the bot offers first (perfect negotiation, polite bot)
            assert (offer["from"], offer["kind"]) == (added["peer_id"], "offer")
            await human.request("bot.remove", peer_id=added["peer_id"])
            left = await human.next_event("peer.left")
            assert left["peer_id"] == added["peer_id"]
    proc.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(proc.wait, 10) == 0
