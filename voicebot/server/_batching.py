"""A stream whose writes can be held back and sent as one: several WebSocket frames, one socket write.

trio-websocket writes each frame with its own ``send_all`` (one system call each). A connection's writer that
finds more messages queued holds the writes (:meth:`BatchingStream.hold`) and sends them together after the
last one (:meth:`BatchingStream.flush`); frames written by other tasks meanwhile (pings, pongs, the close
frame) join the batch in order. Nothing is held once the writer's queue is empty. Writes to the inner stream
take one FIFO lock, so a flush never overlaps a frame that trio-websocket writes (it locks only its own sends),
and bytes go out in the order their frames were made.

It also serves the heartbeat: :attr:`BatchingStream.received_at` is when bytes last arrived (any frame counts
as a sign of life), and :meth:`BatchingStream.write_nowait` writes a small frame (a ping) straight to the
socket without a task or a wait when nothing else is being written and the socket has room.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import trio

from ._wslean import LONE_PONG_SIZE, is_lone_pong

if TYPE_CHECKING:
    import trio_websocket

__all__ = ["BatchingStream"]


class BatchingStream(trio.abc.Stream):
    """``inner`` with held writes: while held, :meth:`send_all` only appends; :meth:`flush` writes them at once."""

    __slots__ = ("_fd", "_held", "_lock", "_parts", "inner", "received_at", "ws")

    def __init__(self, inner: trio.abc.Stream, fd: int | None = None) -> None:
        self.inner = inner
        self._fd = fd
        """The socket under ``inner`` when ``inner`` writes bytes to it unchanged (plain TCP, not TLS); None
        otherwise."""
        self._held = False
        self._parts: list[bytes] = []
        self._lock = trio.StrictFIFOLock()
        self.received_at = trio.current_time()
        """Trio time at which the last bytes were received (creation time before any)."""
        self.ws: trio_websocket.WebSocketConnection | None = None
        """The WebSocket reading from this stream, once open: a lone pong frame received for it is noted as a sign
        of life and not handed on (see :func:`~voicebot.server._wslean.is_lone_pong`)."""

    @property
    def pending(self) -> bool:
        """True while written bytes are held, waiting for :meth:`flush` (e.g. the rest of a partial
        :meth:`write_nowait`)."""
        return bool(self._parts)

    def can_write_nowait(self) -> bool:
        """Whether :meth:`write_nowait` may write now: a plain socket, nothing held, no write in progress."""
        return self._fd is not None and not self._held and not self._lock.locked()

    def hold(self) -> None:
        """Keep writes in memory until :meth:`flush`."""
        self._held = True

    async def flush(self) -> None:
        """Stop holding and write what was held (one ``send_all``)."""
        if self._lock.locked():
            async with self._lock:
                await self._write_held()
            return
        # Uncontended: take the lock without the extra scheduling round trip of ``async with`` (the write
        # itself is a checkpoint; with nothing held there is nothing to wait for).
        self._lock.acquire_nowait()
        try:
            await self._write_held()
        finally:
            self._lock.release()

    async def _write_held(self) -> None:
        self._held = False
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            await self.inner.send_all(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` now, or keep it for :meth:`flush` while held (also when the hold began while this
        write waited for an earlier one: it then joins the batch in its place)."""
        if not self._lock.locked():
            if self._held:  # nothing is waiting to write before it: join the batch
                self._parts.append(bytes(data))
                return
            self._lock.acquire_nowait()  # uncontended: the write below is the checkpoint
            try:
                await self.inner.send_all(data)
            finally:
                self._lock.release()
            return
        async with self._lock:
            if self._held:
                self._parts.append(bytes(data))
                return
            await self.inner.send_all(data)

    def write_nowait(self, data: bytes) -> int:
        """Write ``data`` directly to the socket if that cannot reorder or wait: nothing held, no write in progress,
        the socket has room. Returns the bytes written: ``len(data)``; 0 when it could not (nothing written; use
        :meth:`send_all`); in between when the socket took only part of it, in which case the rest is held and the
        caller must :meth:`flush` soon. Socket errors are left to the next ordinary write to report."""
        if not self.can_write_nowait():
            return 0
        assert self._fd is not None  # can_write_nowait: a plain socket
        try:
            sent = os.write(self._fd, data)
        except OSError:  # would block, or the socket is broken: the ordinary write path finds out
            return 0
        if sent < len(data):
            self._held = True
            self._parts.append(data[sent:])
        return sent

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Read from the inner stream, noting the time of arrival in :attr:`received_at`; a lone pong for :attr:`ws`
        (an idle client answering the heartbeat) is only noted, and the read goes on."""
        while True:
            data = await self.inner.receive_some(max_bytes)
            self.received_at = trio.current_time()
            if self.ws is None or len(data) != LONE_PONG_SIZE or not is_lone_pong(data, self.ws):
                return data

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the inner stream."""
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Write what is held (e.g. the close frame trio-websocket wrote just before closing), then close the inner
        stream (also when that write fails or is cancelled)."""
        try:
            await self.flush()
        finally:
            self._parts.clear()
            await self.inner.aclose()
