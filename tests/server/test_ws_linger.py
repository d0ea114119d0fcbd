"""A close for the client's own frames (1002/1007/1009) is not lost to a TCP reset: the server lingers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from voicebot.server import Server
from voicebot.server._linger import DeferredCloseStream, linger
from voicebot.testing._rawws import OP_BINARY, OP_TEXT, RawWebSocket, frame

from .conftest import MAX_MESSAGE_SIZE as MAX
from .conftest import assert_answers_ping

AFTER_CLOSE = 256 * 1024
CASES = {
    "oversized message": (frame(OP_BINARY, b"a" * (MAX + 1)), 1009),
    "invalid utf-8": (frame(OP_TEXT, b'"\xff"'), 1007),
    "reserved opcode": (frame(0x3, b"x"), 1002),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_close_is_graceful_while_the_client_is_still_sending(tcp_server: Server, case: str) -> None:
    """A socket closed with unread bytes is reset, and a reset discards the close frame at a client that has not
    read it yet. The server reads what the client goes on sending, half-closes, and the client sees a clean EOF
    after the close frame — never a reset — however much it sends after the offending frame."""
    data, code = CASES[case]
    ws = await RawWebSocket.connect("127.0.0.1", tcp_server.port)
    try:
        with trio.fail_after(10):
            await ws.send(data)
            closed, _ = await ws.read_close()
            assert closed == code
            await ws.send(frame(OP_TEXT, b"b" * 1000) * (AFTER_CLOSE // 1000))  # no reset while we send
            assert await ws.stream.receive_some(65536) == b""  # FIN after the close frame, not ECONNRESET
    finally:
        await ws.aclose()


async def test_lingering_is_bounded_for_a_client_that_never_closes(tcp_server: Server) -> None:
    ws = await RawWebSocket.connect("127.0.0.1", tcp_server.port)
    neighbour = await RawWebSocket.connect("127.0.0.1", tcp_server.port)
    try:
        await ws.send(frame(OP_TEXT, b"a" * (MAX + 1)))
        with trio.fail_after(5):
            closed, _ = await ws.read_close()
        assert closed == 1009
        started = trio.current_time()
        with trio.fail_after(tcp_server.close_timeout + 3):  # the server stops lingering and closes TCP
            while (await ws.read()) is not None:
                pass
        assert trio.current_time() - started <= tcp_server.close_timeout + 3
        await assert_answers_ping(neighbour, 1)
    finally:
        await ws.aclose()
        await neighbour.aclose()


async def test_linger_half_closes_and_discards_until_eof(autojump_clock: trio.testing.MockClock) -> None:
    server_end, client_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        got_eof = trio.Event()

        async def client() -> None:
            await client_end.send_all(b"x" * 5000)
            assert await client_end.receive_some() == b""  # the server half-closed first
            got_eof.set()
            await client_end.send_all(b"y" * 300)
            await client_end.send_eof()

        nursery.start_soon(client)
        assert await linger(server_end, timeout=5, max_bytes=1 << 20) == 5300
        assert got_eof.is_set()


async def test_linger_stops_at_its_deadline_and_byte_budget(autojump_clock: trio.testing.MockClock) -> None:
    server_end, client_end = trio.testing.memory_stream_pair()
    started = trio.current_time()
    assert await linger(server_end, timeout=2, max_bytes=100) == 0  # a silent peer: the deadline ends it
    assert trio.current_time() - started == pytest.approx(2)
    server_end, client_end = trio.testing.memory_stream_pair()
    await client_end.send_all(b"z" * 1000)
    assert await linger(server_end, timeout=2, max_bytes=100) == 100  # a chatty peer: the byte budget ends it


async def test_deferred_close_leaves_the_inner_stream_open(autojump_clock: trio.testing.MockClock) -> None:
    server_end, client_end = trio.testing.memory_stream_pair()
    deferred = DeferredCloseStream(server_end)
    await deferred.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await deferred.send_all(b"late")
    with pytest.raises(trio.ClosedResourceError):
        await deferred.receive_some()
    await server_end.send_all(b"still open")  # the owner can still use (and later close) the inner stream
    assert await client_end.receive_some() == b"still open"
