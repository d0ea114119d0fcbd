"""A lingering close for connections the server closes because of what the client sent (1002, 1007, 1009).

When a socket is closed while bytes the peer sent are still unread, the kernel answers with a TCP reset, and a
reset makes the peer's kernel throw away what it had received but the peer had not read yet — including the close
frame that explains why. A client that sends a large message and only then reads (the common way to write a
client) would see "connection reset" instead of 1009. So after such a close frame the server half-closes (FIN)
and keeps reading and discarding until the peer closes too (EOF), bounded by a deadline and a byte budget, and only
then closes the socket (RFC 6455 §7.1.1 asks the server to close TCP first; a lingering close is how HTTP servers
avoid the same loss).

:class:`DeferredCloseStream` lets trio-websocket "close" the stream (it does so itself right after answering a
protocol error) without closing the socket, so that the owner can linger first.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import trio

__all__ = ["LINGER_CODES", "DeferredCloseStream", "linger"]

#: Close codes about the client's own frames (protocol error, invalid UTF-8, message too big): the client may
#: still be sending, so the close frame must not be lost to a reset.
LINGER_CODES = frozenset({1002, 1007, 1009})
#: Largest read while discarding.
_CHUNK = 65536


class DeferredCloseStream(trio.abc.Stream):
    """``inner`` whose :meth:`aclose` only marks it closed for its user; :attr:`inner` stays open for the owner,
    who closes it (after :func:`linger`, when appropriate)."""

    __slots__ = ("closed", "inner")  # one per connection: no instance dict

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.closed = False

    def receive_some(self, max_bytes: int | None = None) -> Coroutine[Any, Any, bytes | bytearray]:
        """Receive from ``inner``; ``ClosedResourceError`` once closed.

        Not a coroutine of its own: it hands over ``inner``'s, so a connection waiting for bytes holds one frame
        less (thousands of idle connections wait here)."""
        if self.closed:
            raise trio.ClosedResourceError("stream was closed")
        return self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send on ``inner``; ``ClosedResourceError`` once closed."""
        if self.closed:
            raise trio.ClosedResourceError("stream was closed")
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to ``inner``."""
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Mark closed (``inner`` is left to the owner)."""
        self.closed = True
        await trio.lowlevel.checkpoint()


async def linger(stream: trio.abc.Stream, *, timeout: float, max_bytes: int) -> int:
    """Half-close ``stream`` when it can, then read and discard until EOF, ``timeout`` seconds or ``max_bytes``
    bytes, whichever comes first; return the bytes discarded. Never raises for a broken or closed stream (the
    caller closes it next either way)."""
    discarded = 0
    with trio.move_on_after(timeout):
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            while discarded < max_bytes:
                chunk = await stream.receive_some(min(_CHUNK, max_bytes - discarded))
                if not chunk:
                    break
                discarded += len(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass
    return discarded
