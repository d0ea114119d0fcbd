"""A stream whose writes can be held back and sent as one: several WebSocket frames, one socket write.

trio-websocket writes each frame with its own ``send_all`` (one system call each). A connection's writer that
finds more messages queued holds the writes (:meth:`BatchingStream.hold`) and sends them together after the
last one (:meth:`BatchingStream.flush`); frames written by other tasks meanwhile (pings, pongs, the close
frame) join the batch in order. Nothing is held once the writer's queue is empty. Writes to the inner stream
take one FIFO lock, so a flush never overlaps a frame that trio-websocket writes (it locks only its own sends),
and bytes go out in the order their frames were made.
"""

from __future__ import annotations

import trio

__all__ = ["BatchingStream"]


class BatchingStream(trio.abc.Stream):
    """``inner`` with held writes: while held, :meth:`send_all` only appends; :meth:`flush` writes them at once."""

    __slots__ = ("_held", "_lock", "_parts", "inner")

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self._held = False
        self._parts: list[bytes] = []
        self._lock = trio.StrictFIFOLock()

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

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Read from the inner stream."""
        return await self.inner.receive_some(max_bytes)

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
