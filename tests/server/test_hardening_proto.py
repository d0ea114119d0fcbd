"""Through a running server: bad text never kills a writer or a neighbour's bots, and
outboxes / resume buffers are bounded in bytes as well as messages."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from voicebot.hub import Hub, HubConfig
from voicebot.protocol import Chat, Hello, LobbyCreate, LobbyJoin
from voicebot.server import Server
from voicebot.testing import FreezableStream, open_client, open_test_server, settings_for_tests
from voicebot.testing._corpus import VALID_MESSAGES
from voicebot.workers import BotHubSettings, install_bot_hub

sys.path.insert(0, str(Path(__file__).parent.parent / "workers"))
from workers_helpers import running_worker


def _bad_variants(message: dict[str, Any]) -> list[str]:
    """The message with each field (at any depth) replaced by a lone surrogate, a huge number, deep nesting."""
    out: list[str] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, item in items:
            for bad in ('"\\ud800"', "9" * 5000, "1e999", "[" * 40 + "0" + "]" * 40):
                copy = json.loads(json.dumps(message))
                target = copy
                for part in path:
                    target = target[part]
                target[key] = "@@X@@"
                out.append(json.dumps(copy).replace('"@@X@@"', bad))
            walk(item, (*path, key))

    walk(message, ())
    return out


async def test_bad_text_from_a_client_never_ends_the_workers_bots(autojump_clock: object) -> None:
    settings = settings_for_tests(error_limit=100_000, request_rate=100_000.0, request_burst=100_000)
    async with open_test_server(settings, seed=3) as server:
        bot_hub = install_bot_hub(server, BotHubSettings(start_timeout=5.0))
        async with (open_client(server, "owner") as owner, open_client(server, "attacker") as attacker,
                    running_worker(server, bot_hub, capacity=3)):
            room = await owner.create_lobby("room")
            await owner.join(room["id"])
            await attacker.join(room["id"])
            added = await owner.request("bot.add", bot="idle")
            # row 1's reproduction, then the general form: every field of every message type (worker protocol
            # included), at every depth, each replaced by each kind of bad value
            frames = ['{"type":"bot.add","bot":"idle","note":"\\ud800"}', '{"type":"ping","id":"\\ud800"}']
            for examples in VALID_MESSAGES.values():
                for example in examples:
                    frames += _bad_variants(example)
            for frame in frames:
                await attacker.send_raw(frame)
            await attacker.send_raw('{"type":"ping","id":"done"}')
            codes: dict[str, int] = {}
            while True:
                event = await attacker.next_event()
                if event.get("reply_to") == "done":
                    break
                if event["type"] in ("peer.joined", "peer.left"):
                    continue
                assert event["type"] == "error", event
                codes[event["code"]] = codes.get(event["code"], 0) + 1
            assert set(codes) == {"invalid_text", "invalid_number", "nesting_too_deep"}, codes
            assert sum(codes.values()) == len(frames)
            # the worker's link and its bot are untouched; owner and attacker still talk
            assert bot_hub.scheduler.job_of_peer(added["peer_id"]) is not None
            assert len(bot_hub.scheduler.workers) == 1
            assert (await owner.request("ping"))["type"] == "pong"
            assert (await attacker.request("ping"))["type"] == "pong"
            assert server.errors.get_error_statistics().get("closes", {}) == {}


async def test_writer_survives_an_unencodable_string(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        conn = next(c for c in server.connections.values() if server.hub.session_of(c.id)
                    and server.hub.session_of(c.id).peer_id == a.peer_id)  # type: ignore[union-attr]
        conn.enqueue('{"type":"note","text":"x\ud800y"}')  # raw, not through protocol.encode
        conn.send({"type": "note", "text": "p\udfffq"})
        assert (await a.next_event("note"))["text"] == "x\ufffdy"
        assert (await a.next_event("note"))["text"] == "p\ufffdq"
        assert (await a.request("ping"))["type"] == "pong"
        assert (await b.request("ping"))["type"] == "pong"


async def test_outbox_is_bounded_in_bytes(autojump_clock: object) -> None:
    limit = 40_000
    settings = settings_for_tests(outbox_size=10_000, outbox_bytes=limit, request_rate=10_000.0)
    async with open_test_server(settings) as server:
        streams: list[FreezableStream] = []

        def wrap(stream: trio.abc.Stream) -> trio.abc.Stream:
            streams.append(FreezableStream(stream))
            return streams[-1]

        async with open_client(server, "fast") as fast, open_client(server, "slow", lockstep=True, wrap=wrap) as slow:
            room = await fast.create_lobby("room")
            await fast.join(room["id"])
            await slow.join(room["id"])
            await fast.next_event("peer.joined")
            slow_conn = next(c for c in server.connections.values()
                             if (s := server.hub.session_of(c.id)) is not None and s.peer_id == slow.peer_id)
            streams[0].freeze()
            rng = random.Random(5)
            sent = 0
            while slow_conn.close_decision is None:
                text = "é" * rng.randint(1, 1999)  # varying sizes, 2 bytes per character
                await fast.chat(text)
                assert (await fast.next_event("chat"))["text"] == text
                sent += 1
                assert slow_conn.out_bytes <= limit
            assert slow_conn.close_decision[0] == 1008
            assert sent < 10_000 / 10  # far below the message cap: the byte cap closed it
            left = await fast.next_event("peer.left", timeout=60)
            assert left["peer_id"] == slow.peer_id
            assert (await fast.request("ping"))["type"] == "pong"


def test_resume_buffer_is_bounded_in_bytes() -> None:
    hub = Hub(HubConfig(resume_buffer=10_000, resume_buffer_bytes=30_000), rng=random.Random(1))
    hub.hello(1, Hello(name="a"), 0.0)
    hub.hello(2, Hello(name="b"), 0.0)
    [created] = [a for a in hub.request(1, LobbyCreate(name="r"), 0.0)
                 if getattr(a, "message", None)]
    lobby_id = created.message["lobby"]["id"]  # type: ignore[union-attr]
    hub.request(1, LobbyJoin(lobby_id=lobby_id), 0.0)
    hub.request(2, LobbyJoin(lobby_id=lobby_id), 0.0)
    b = hub.session_of(2)
    assert b is not None
    hub.disconnect(2, 1.0)
    rng = random.Random(2)
    for _ in range(1000):
        hub.request(1, Chat(text="x" * rng.randint(1, 2000)), 2.0)
        if b.peer_id not in hub.sessions:
            break
        assert b.buffer_bytes <= 30_000
        assert b.buffer_bytes == sum(len(json.dumps(m, separators=(",", ":"))) for m in b.buffer)
    assert b.peer_id not in hub.sessions  # overflowing the byte bound ended the session
    assert len(b.buffer) < 100


@pytest.mark.parametrize("size", [100, 200_000])
async def test_a_single_large_message_fits_an_empty_outbox(size: int, autojump_clock: object) -> None:
    async with open_test_server(settings_for_tests(outbox_bytes=1000)) as server, open_client(server, "a") as a:
        conn = next(iter(server.connections.values()))
        conn.send({"type": "note", "text": "z" * size})
        assert len((await a.next_event("note"))["text"]) == size


async def test_worker_link_writer_survives_unencodable_options(autojump_clock: object) -> None:
    """Row 1's failure mode one layer down: even if a lone surrogate reached the hub → worker link (decode refuses
    it now), the writer sends U+FFFD instead of dying, so the worker's other bots stay."""
    async with open_test_server(seed=4) as server:
        bot_hub = install_bot_hub(server, BotHubSettings(start_timeout=5.0))
        async with open_client(server, "owner") as owner, running_worker(server, bot_hub, capacity=3) as (worker, _):
            room = await owner.create_lobby("room")
            await owner.join(room["id"])
            added = await owner.request("bot.add", bot="idle")
            [info] = list(bot_hub.scheduler.workers.values())
            bot_hub.send(info.conn, {"type": "worker.stop", "job_id": "j_\ud800"})  # bypasses decode on purpose
            await trio.sleep(1)
            assert bot_hub.scheduler.job_of_peer(added["peer_id"]) is not None
            assert len(bot_hub.scheduler.workers) == 1 and worker.jobs
            # the client side cannot die either: its encoder sends U+FFFD, which the server accepts as text
            await owner.send({"type": "chat", "text": "x\ud800y"})
            assert (await owner.next_event("chat"))["text"] == "x\ufffdy"
            assert server.errors.get_error_statistics().get("closes", {}) == {}
