"""A stream whose writes can be held back and sent as one: several WebSocket frames, one socket write.

trio-websocket writes each frame with its own ``send_all`` (one system call each). A connection's writer that
finds more messages queued holds the writes (:meth:`BatchingStream.hold`) and sends them together after the
last one (:meth:`BatchingStream.flush`); frames written by other tasks meanwhile (pings, pongs, the close
frame) join the batch in order. Nothing is held once the writer's queue is empty.
"""

from __future__ import annotations

import trio

__all__ = ["BatchingStream"]


class BatchingStream(trio.abc.Stream):
    """``inner`` with held writes: while held, :meth:`send_all` only appends; :meth:`flush` writes them at once."""

    __slots__ = ("_held", "_parts", "inner")

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self._held = False
        self._parts: list[bytes] = []

    def hold(self) -> None:
        """Keep writes in memory until :meth:`flush`."""
        self._held = True

    async def flush(self) -> None:
        """Stop holding and write what was held (one ``send_all``)."""
        self._held = False
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            await self.inner.send_all(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` now, or keep it for :meth:`flush` while held."""
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
        """Close the inner stream (what is still held is dropped: call :meth:`flush` first)."""
        self._parts.clear()
        await self.inner.aclose()
