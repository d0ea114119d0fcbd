"""An open server WebSocket keeps none of its HTTP handshake's state, and still works in every direction."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest
import trio
import trio.testing
import trio_websocket

from voicebot.server import Server
from voicebot.server._wslean import SET_EVENT, release_handshake
from voicebot.testing import open_client


async def _pair(nursery: trio.Nursery) -> tuple[trio_websocket.WebSocketConnection, trio_websocket.WebSocketConnection]:
    """An accepted server WebSocket and its client, over a memory stream (both readers run in ``nursery``)."""
    client_end, server_end = trio.testing.memory_stream_pair()
    accepted: list[trio_websocket.WebSocketConnection] = []

    async def serve() -> None:
        request = await trio_websocket.wrap_server_stream(nursery, server_end)
        accepted.append(await request.accept())

    async with trio.open_nursery() as opening:  # ends once the server side has accepted
        opening.start_soon(serve)
        client = await trio_websocket.wrap_client_stream(nursery, client_end, "localhost", "/ws")
    return accepted[0], client


async def test_release_drops_the_handshake_and_the_websocket_still_works(autojump_clock: object) -> None:
    async with trio.open_nursery() as nursery:
        server, client = await _pair(nursery)
        handshake = server._wsproto.handshake
        assert handshake._h11_connection is not None  # what the installed wsproto keeps (else this test is moot)
        assert release_handshake(server) is True
        assert handshake._h11_connection is None
        assert not handshake._events and handshake._events.maxlen == 0
        assert server._open_handshake is SET_EVENT
        assert release_handshake(client) is False  # only a server side is trimmed
        await client.send_message("hello")
        assert await server.get_message() == "hello"
        await server.send_message(b"\x01\x02")
        assert await client.get_message() == b"\x01\x02"
        with trio.fail_after(1):
            await server.ping(b"p1")  # answered by the client's pong, parsed by the trimmed server
            await client.ping(b"p2")
        await client.aclose(1000, "bye")
        assert server.closed is not None and server.closed.code == 1000
        nursery.cancel_scope.cancel()


async def test_release_refuses_an_unexpected_shape(caplog: pytest.LogCaptureFixture) -> None:
    odd = SimpleNamespace(_wsproto=SimpleNamespace(handshake=SimpleNamespace(), connection=None, client=False))
    with caplog.at_level(logging.WARNING, logger="voicebot.server"):
        assert release_handshake(odd) is False  # type: ignore[arg-type]
    assert "internals changed" in caplog.text


async def test_server_connections_keep_no_handshake_state(server: Server, autojump_clock: object) -> None:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(open_client(server, f"c{i}")) for i in range(3)]
        assert len(server.connections) == 3
        for conn in server.connections.values():
            assert conn.ws._wsproto.handshake._h11_connection is None
            assert conn.greeted is SET_EVENT  # past hello: the connection's own event is gone
        reply = await clients[0].request("ping")
        assert reply["type"] == "pong"
