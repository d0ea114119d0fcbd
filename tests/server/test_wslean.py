"""An open server WebSocket keeps none of its HTTP handshake's state, and still works in every direction."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest
import trio
import trio.testing
import trio_websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

from voicebot.server import Server
from voicebot.server._wsclose import answer_protocol_errors
from voicebot.server._wslean import SET_EVENT, is_lone_pong, release_handshake
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
        assert server._for_testing_peer_closed_connection is SET_EVENT
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


PONG = bytes([0x8A, 0x80, 1, 2, 3, 4])  # a client's empty pong: FIN + pong, masked, length 0, mask key


async def test_is_lone_pong_only_for_one_whole_pong_at_a_frame_boundary(autojump_clock: object) -> None:
    async with trio.open_nursery() as nursery:
        server, _client = await _pair(nursery)
        assert release_handshake(server)
        assert is_lone_pong(PONG, server)
        assert not is_lone_pong(PONG + b"\x81", server)  # more bytes than the pong
        assert not is_lone_pong(PONG[:5], server)
        assert not is_lone_pong(bytes([0x89, 0x80, 1, 2, 3, 4]), server)  # a ping needs its answer
        assert not is_lone_pong(bytes([0x8A, 0x04, 1, 2, 3, 4]), server)  # unmasked, with a payload
        server._wsproto.receive_data(b"\x81\x85\x01")  # a text frame's first bytes: the pong's would be inside it
        assert not list(server._wsproto.events())
        assert not is_lone_pong(PONG, server)
        nursery.cancel_scope.cancel()


async def test_is_lone_pong_false_while_trio_websocket_awaits_a_pong(autojump_clock: object) -> None:
    async with trio.open_nursery() as nursery:
        server, _client = await _pair(nursery)
        assert is_lone_pong(PONG, server)
        server._pings[b""] = trio.Event()  # as ws.ping(b"") leaves it until answered
        assert not is_lone_pong(PONG, server)
        nursery.cancel_scope.cancel()


async def test_heartbeat_pongs_are_noted_without_reaching_wsproto(server: Server, autojump_clock: object) -> None:
    async with open_client(server, "idle") as client:
        (conn,) = server.connections.values()
        fed: list[bytes] = []
        original = conn.ws._wsproto.receive_data

        def counting(data: bytes | None) -> None:
            fed.append(b"" if data is None else bytes(data))
            original(data)

        conn.ws._wsproto.receive_data = counting  # type: ignore[method-assign]
        interval = server.settings.heartbeat_interval
        await trio.sleep(interval * 4.5)
        assert server.heartbeats.pings >= 3
        assert conn.last_received > trio.current_time() - 1.5 * interval  # the pongs counted as signs of life
        assert fed == []  # none of them was parsed
        assert (await client.request("ping"))["type"] == "pong"  # a message still goes through
        assert fed


async def test_protocol_error_answering_is_a_class_not_a_closure_per_connection(autojump_clock: object) -> None:
    async with trio.open_nursery() as nursery:
        first, _c1 = await _pair(nursery)
        second, _c2 = await _pair(nursery)
        assert answer_protocol_errors(first) and answer_protocol_errors(second)
        assert answer_protocol_errors(first)  # twice: still answering, nothing wrapped twice
        assert type(first._wsproto.connection) is type(second._wsproto.connection)
        assert "events" not in vars(first._wsproto.connection)  # no per-connection wrapper
        first._wsproto.receive_data(bytes([0x81, 0x82, 0, 0, 0, 0, 0xFF, 0xFE]))  # invalid UTF-8 text
        (event,) = list(first._wsproto.events())
        assert isinstance(event, CloseConnection) and event.code == 1007
        assert first._wsproto.state is ConnectionState.REMOTE_CLOSING  # answered like a received close frame
        nursery.cancel_scope.cancel()
