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


async def test_close_writes_what_is_held_first() -> None:
    inner = _Recorder()
    stream = BatchingStream(inner)
    stream.hold()
    await stream.send_all(b"frame")
    await stream.send_all(b"close frame")  # trio-websocket writes its close frame, then closes the stream
    await stream.aclose()
    assert inner.closed and inner.writes == [b"frameclose frame"]


class _SlowRecorder(_Recorder):
    """Refuses overlapping writes, like trio.SocketStream, and takes a while per write."""

    def __init__(self) -> None:
        super().__init__()
        self._busy = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._busy:
            raise trio.BusyResourceError("another task is sending")
        self._busy = True
        try:
            await trio.sleep(1)
            self.writes.append(bytes(data))
        finally:
            self._busy = False


async def test_writes_from_other_tasks_never_overlap_a_flush(autojump_clock: trio.testing.MockClock) -> None:
    inner = _SlowRecorder()
    stream = BatchingStream(inner)
    stream.hold()
    await stream.send_all(b"1")
    await stream.send_all(b"2")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.flush)
        await trio.sleep(0.5)  # the flush is writing
        nursery.start_soon(stream.send_all, b"3")  # e.g. a pong from trio-websocket's reader
        await trio.sleep(0.1)
        stream.hold()  # the writer holds again before "3" got the stream: "3" joins the new batch
        await stream.send_all(b"4")
        await trio.sleep(2)
        await stream.flush()
    assert inner.writes == [b"12", b"34"]


async def test_write_nowait_goes_straight_to_the_socket_only_when_safe() -> None:
    """A ping written without a task: at once when nothing is held or being written; never ahead of held frames;
    a partial write holds the rest for the next flush, so frames stay whole and in order."""
    a, b = trio.socket.socketpair()
    with a, b:
        stream = BatchingStream(trio.SocketStream(a), a.fileno())
        assert stream.write_nowait(b"p1") == 2
        assert await b.recv(10) == b"p1"
        stream.hold()
        await stream.send_all(b"m1")
        assert stream.write_nowait(b"p2") == 0  # frames are held: it would overtake them
        await stream.flush()
        assert await b.recv(10) == b"m1"
        big = b"x" * (1 << 22)  # far more than the socket buffers hold: only part is taken
        sent = stream.write_nowait(big)
        assert 0 < sent < len(big)
        await stream.send_all(b"after")  # queued behind the held rest of ``big``
        received = bytearray()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.flush)
            while len(received) < len(big) + 5:
                received += await b.recv(1 << 16)
        assert bytes(received) == big + b"after"
        assert BatchingStream(_Recorder()).write_nowait(b"p") == 0  # no socket: the caller writes it the usual way


async def test_received_at_notes_the_last_arrival(autojump_clock: trio.testing.MockClock) -> None:
    stream = BatchingStream(_Recorder())
    created = stream.received_at
    await trio.sleep(5)
    assert await stream.receive_some() == b"in"
    assert stream.received_at == created + 5
