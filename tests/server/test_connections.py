"""Connection lifecycle: resume, heartbeat, slow clients, frame limits, hello timeout, shutdown (autojump clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
import trio_websocket

from voicebot.client import connect_stream
from voicebot.server import Server
from voicebot.testing import FreezableStream, open_client, open_test_server, settings_for_tests


async def test_resume_within_grace_keeps_peer_and_lobby_and_buffers(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        async with open_client(server, "b") as b:
            await b.join(room["id"])
            token, peer_id = b.resume_token, b.peer_id
        # b's socket is gone; it stays in the lobby during the grace and messages are kept for it
        await trio.sleep(1)
        await a.chat("while you were away")
        await a.signal(peer_id, "offer", sdp="v=0\r\n")
        with trio.move_on_after(1):
            await a.next_event("peer.left")
            pytest.fail("peer.left during the grace")
        async with open_client(server) as b2:
            welcome = await b2.hello("ignored", resume=token)
            assert welcome["resumed"] is True
            assert welcome["peer_id"] == peer_id and welcome["name"] == "b"
            assert welcome["lobby_id"] == room["id"]
            assert [p["peer_id"] for p in welcome["peers"]] == [a.peer_id]
            assert welcome["resume_token"] != token
            assert (await b2.next_event())["text"] == "while you were away"
            assert (await b2.next_event())["kind"] == "offer"
            # tokens are single-use
            async with open_client(server) as b3:
                again = await b3.hello("b", resume=token)
                assert again["resumed"] is False and again["peer_id"] != peer_id


async def test_resume_replaces_open_socket_with_4001(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server) as a2:
        welcome = await a2.hello("a", resume=a.resume_token)
        assert welcome["resumed"] is True and welcome["peer_id"] == a.peer_id
        reason = await a.wait_closed(timeout=5)
        assert reason is not None and reason.code == 4001
        assert (await a2.request("ping"))["type"] == "pong"


async def test_grace_expiry_tells_the_lobby(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        async with open_client(server, "b") as b:
            await b.join(room["id"])
            token, peer_id = b.resume_token, b.peer_id
        start = trio.current_time()
        left = await a.next_event("peer.left", timeout=60)
        assert left == {"type": "peer.left", "lobby_id": room["id"], "peer_id": peer_id, "reason": "disconnected"}
        assert trio.current_time() - start == pytest.approx(30.0, abs=0.01)
        async with open_client(server) as late:
            assert (await late.hello("b", resume=token))["resumed"] is False


async def test_resume_buffer_overflow_ends_session() -> None:
    async with open_test_server(settings_for_tests(resume_buffer=3)) as server, open_client(server, "a") as a:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        async with open_client(server, "b") as b:
            await b.join(room["id"])
            token = b.resume_token
        for i in range(4):
            await a.chat(f"m{i}")
        left = await a.next_event("peer.left")
        assert left["reason"] == "disconnected"
        async with open_client(server) as b2:
            assert (await b2.hello("b", resume=token))["resumed"] is False


async def test_heartbeat_timeout_closes_4002(autojump_clock: object) -> None:
    async with open_test_server() as server:
        frozen: list[FreezableStream] = []

        def wrap(stream: trio.abc.Stream) -> trio.abc.Stream:
            frozen.append(FreezableStream(stream))
            return frozen[0]

        async with open_client(server, "a", wrap=wrap) as a, open_client(server, "b") as b:
            start = trio.current_time()
            frozen[0].freeze()
            conn = server.connections[1]
            with trio.fail_after(100):
                await conn.finished.wait()
            elapsed = trio.current_time() - start
            # A read already in flight when the network froze still answers the first ping (15 s); the
            # second (30 s) gets no pong within 2 intervals: closed at 60 s plus the bounded close handshake.
            assert 60 <= elapsed <= 62
            assert server.errors.get_error_statistics()["total"] == 0
            assert (await b.request("ping"))["type"] == "pong"  # the neighbour is untouched
            frozen[0].thaw()
            reason = await a.wait_closed(timeout=10)
            assert reason is not None and reason.code in (4002, 1006)


async def test_live_client_survives_many_heartbeats(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a:
        await trio.sleep(600)
        assert (await a.request("ping"))["type"] == "pong"


async def test_slow_client_is_closed_1008_without_slowing_lobby(autojump_clock: object) -> None:
    async with open_test_server(settings_for_tests(outbox_size=8)) as server:
        streams: list[FreezableStream] = []

        def wrap(stream: trio.abc.Stream) -> trio.abc.Stream:
            streams.append(FreezableStream(stream))
            return streams[-1]

        async with open_client(server, "fast") as fast, open_client(server, "slow", lockstep=True, wrap=wrap) as slow:
            room = await fast.create_lobby("room")
            await fast.join(room["id"])
            await slow.join(room["id"])
            await fast.next_event("peer.joined")
            streams[0].freeze()
            for i in range(50):
                await fast.chat(f"line {i}")
                assert (await fast.next_event("chat"))["text"] == f"line {i}"
            left = await fast.next_event("peer.left", timeout=60)
            assert left["peer_id"] == slow.peer_id
            assert server.errors.get_error_statistics()["closes"] == {"1008": 1}


async def test_oversized_frame_closes_1009(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        await a.send_raw('{"type":"chat","text":"' + "x" * 70_000 + '"}')
        reason = await a.wait_closed(timeout=5)
        assert reason is not None and reason.code == 1009
        assert (await b.request("ping"))["type"] == "pong"


async def test_hello_timeout_closes_4003(server: Server, autojump_clock: object) -> None:
    async with open_client(server) as a:
        start = trio.current_time()
        reason = await a.wait_closed(timeout=30)
        assert reason is not None and reason.code == 4003
        assert trio.current_time() - start == pytest.approx(10.0, abs=0.01)


async def test_error_budget_closes_1008(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        for _ in range(19):
            await a.send_raw("{bad json")
            assert (await a.next_event("error"))["code"] == "invalid_json"
        assert (await a.request("ping"))["type"] == "pong"
        await trio.sleep(11)  # the 10 s window slides: those 19 no longer count
        for _ in range(19):
            await a.send_raw("{bad json")
            assert (await a.next_event("error"))["code"] == "invalid_json"
        assert (await a.request("ping"))["type"] == "pong"
        await a.send_raw("{bad json")  # the 20th within 10 s
        reason = await a.wait_closed(timeout=5)
        assert reason is not None and reason.code == 1008 and "too many errors" in (reason.reason or "")
        assert (await b.request("ping"))["type"] == "pong"
        assert server.errors.get_error_statistics()["closes"] == {"1008": 1}


async def test_graceful_shutdown_closes_1001(autojump_clock: object) -> None:
    reasons: list[int | None] = []
    async with open_test_server() as server, open_client(server, "a") as a, open_client(server, "b") as b:
        start = trio.current_time()
        server.shutdown()
        for c in (a, b):
            r = await c.wait_closed(timeout=10)
            reasons.append(r.code if r else None)
        with trio.fail_after(server.settings.shutdown_timeout):
            await server.stopped.wait()
        assert trio.current_time() - start <= server.settings.shutdown_timeout
    assert reasons == [1001, 1001]


async def test_wrong_path_is_rejected(server: Server, autojump_clock: object) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    server.connect_stream(server_end)
    rejected = pytest.RaisesExc(trio_websocket.ConnectionRejected, check=lambda e: e.status_code == 404)
    with pytest.RaisesGroup(rejected, flatten_subgroups=True):
        async with connect_stream(client_end, path="/nope"):
            pass
