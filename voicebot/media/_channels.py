"""A bounded Trio memory channel that never blocks its producer: when full, the oldest item is dropped."""

from __future__ import annotations

import contextlib
from typing import Generic, TypeVar

import trio

__all__ = ["DropOldestChannel"]

T = TypeVar("T")


class DropOldestChannel(Generic[T]):
    """Producer side for sync callers (aiortc callbacks, asyncio pumps): :meth:`put` never blocks or raises.

    Consumers read :attr:`receive`. When the buffer is full the oldest item is discarded and counted in
    :attr:`dropped`, so the newest data always gets through (right for real-time audio and state events).
    After :meth:`close`, consumers see ``EndOfChannel`` once the buffer is drained and ``put`` is a no-op.
    """

    def __init__(self, capacity: int) -> None:
        self._send, self.receive = trio.open_memory_channel[T](capacity)
        self._drain = self.receive.clone()  # our own handle on the buffer, to drop from its head
        self.dropped = 0
        """Items discarded because the buffer was full."""

    def put(self, item: T) -> bool:
        """Enqueue ``item``; returns False if an older item had to be dropped (or the channel is closed)."""
        try:
            self._send.send_nowait(item)
            return True
        except trio.WouldBlock:
            pass
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        with contextlib.suppress(trio.WouldBlock):
            self._drain.receive_nowait()
        self.dropped += 1
        with contextlib.suppress(trio.WouldBlock):  # pragma: no branch - we just made room
            self._send.send_nowait(item)
        return False

    def close(self) -> None:
        """End the stream (idempotent)."""
        self._send.close()
        self._drain.close()
