"""WebSocket protocol errors are answered with their close codes, on real TCP with raw frames."""

from __future__ import annotations

import pytest
import trio

from voicebot.server import Server
from voicebot.testing._rawws import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, RawWebSocket, frame

from .conftest import MAX_MESSAGE_SIZE as MAX
from .conftest import assert_answers_ping


def _fragmented(total: int, piece: int, opcode: int = OP_TEXT) -> bytes:
    out = frame(opcode, b"a" * piece, fin=False)
    sent = piece
    while sent < total:
        out += frame(OP_CONT, b"a" * piece, fin=False)
        sent += piece
    return out + frame(OP_CONT, b"a", fin=True)


CASES = {
    "invalid utf-8 text": (frame(OP_TEXT, b'{"type":"ping","x":"\xff\xfe"}'), 1007),
    "truncated utf-8 sequence": (frame(OP_TEXT, b"\xe2\x82"), 1007),
    "encoded surrogate (CESU)": (frame(OP_TEXT, b'"\xed\xa0\x80"'), 1007),
    "invalid utf-8 across fragments": (frame(OP_TEXT, b"ok\xe2", fin=False) + frame(OP_CONT, b"\x28\xa1"), 1007),
    "rsv1 set": (frame(OP_TEXT, b'{"type":"ping"}', rsv=4), 1002),
    "rsv2 set": (frame(OP_TEXT, b'{"type":"ping"}', rsv=2), 1002),
    "rsv3 set": (frame(OP_BINARY, b"x", rsv=1), 1002),
    "reserved data opcode 3": (frame(0x3, b"x"), 1002),
    "reserved data opcode 7": (frame(0x7, b""), 1002),
    "reserved control opcode 0xB": (frame(0xB, b""), 1002),
    "reserved control opcode 0xF": (frame(0xF, b"x"), 1002),
    "unmasked client frame": (frame(OP_TEXT, b'{"type":"ping"}', mask=False), 1002),
    "continuation without a start": (frame(OP_CONT, b"x"), 1002),
    "new message inside a fragmented one": (frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), 1002),
    "fragmented control frame": (frame(OP_PING, b"x", fin=False), 1002),
    "control frame over 125 bytes": (frame(OP_PING, b"x" * 126), 1002),
    "oversized message": (frame(OP_TEXT, b"a" * (MAX + 1)), 1009),
    "oversized binary message": (frame(OP_BINARY, b"a" * (MAX * 3)), 1009),
    "oversized fragmented message": (_fragmented(MAX * 2, 100), 1009),
    "oversized fragmented in tiny pieces": (_fragmented(MAX + 10, 1), 1009),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_protocol_error_gets_its_close_code(tcp_server: Server, case: str) -> None:
    data, code = CASES[case]
    ws = await RawWebSocket.connect("127.0.0.1", tcp_server.port)
    neighbour = await RawWebSocket.connect("127.0.0.1", tcp_server.port)
    try:
        await ws.send_text('{"type":"ping","id":1}')
        with trio.fail_after(5):
            got = await ws.read()
            assert got is not None and b"pong" in got[1]
            await ws.send(data)
            closed, _ = await ws.read_close()
        assert closed == code, case
        # the neighbour is untouched
        await assert_answers_ping(neighbour, 2)
    finally:
        await ws.aclose()
        await neighbour.aclose()


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
async def test_oversized_stream_still_sees_1009_while_it_keeps_sending(tcp_server: Server, opcode: int) -> None:
    ws = await RawWebSocket.connect("127.0.0.1", tcp_server.port)
    try:
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                try:
                    await ws.send(frame(opcode, b"a" * 1000, fin=False))
                    for _ in range(2000):  # 2 MB in 1 KB fragments, far beyond the limit
                        await ws.send(frame(OP_CONT, b"a" * 1000, fin=False))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            nursery.start_soon(flood)
            with trio.fail_after(10):
                closed, _ = await ws.read_close()
            nursery.cancel_scope.cancel()
        assert closed == 1009
    finally:
        await ws.aclose()
