"""BatchingStream: held writes go out as one write, in order; nothing is held otherwise."""

from __future__ import annotations

import trio
import trio.testing

from voicebot.server._batching import BatchingStream


class _Recorder(trio.abc.Stream):
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return b"in"

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def test_held_writes_go_out_together_in_order() -> None:
    inner = _Recorder()
    stream = BatchingStream(inner)
    await stream.send_all(b"a")
    assert inner.writes == [b"a"]  # not held: written at once
    stream.hold()
    await stream.send_all(b"b")
    await stream.send_all(memoryview(b"c"))
    assert inner.writes == [b"a"]
    await stream.flush()
    assert inner.writes == [b"a", b"bc"]
    await stream.flush()  # nothing held: no empty write
    await stream.send_all(b"d")
    assert inner.writes == [b"a", b"bc", b"d"]
    assert await stream.receive_some(10) == b"in"


async def test_close_drops_what_is_held() -> None:
    inner = _Recorder()
    stream = BatchingStream(inner)
    stream.hold()
    await stream.send_all(b"x")
    await stream.aclose()
    assert inner.closed and inner.writes == []
