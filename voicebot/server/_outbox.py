"""A connection's outbound messages: written straight to an idle socket, else queued for a writer task.

A message for a connection whose socket is idle (nothing queued, held or being written) is framed with the
WebSocket's own wsproto connection and written by the sending task (see :mod:`._framing`). Otherwise it is queued
in a bounded outbox (``outbox_size`` messages, ``outbox_bytes`` bytes, and the address's shared budget; full
closes the connection 1008), and a writer task runs only while the outbox holds something, writing what is queued
as one batch per wake-up. An idle connection holds no writer task and no outbox (both cost memory, times
thousands).

:class:`OutboxWriting` is a base of :class:`~voicebot.server._connection.Connection`, which sets its slots and
holds the state it names. It extends :class:`ReadPausing` rather than standing beside it because only one base of
a class may add slots. It lives apart so that the connection module stays about the connection's life, reading
and errors.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Any

import trio
import trio_websocket
from wsproto.connection import ConnectionState

from .. import faults, protocol
from ._backpressure import CLOSE_POLICY, ReadPausing
from ._framing import encode_text, write_frames

if TYPE_CHECKING:
    from ._batching import BatchingStream
    from ._hosts import ConnectionHost

__all__ = ["WRITE_BATCH", "WRITE_BATCH_BYTES", "Closing", "OutboxWriting"]

#: Most messages, and about the most UTF-8 bytes, the writer takes off the outbox for one batch (one write).
WRITE_BATCH = 64
WRITE_BATCH_BYTES = 64 * 1024


class Closing(enum.Enum):
    """The outbox entry that ends the queue: the close frame follows what was queued before it."""

    CLOSE = "close"


class OutboxWriting(ReadPausing):
    """Writing a connection's messages in order (and, from :class:`ReadPausing`, pausing its reader while they
    pile up). The connection sets the slots here in its ``__init__``; the attributes declared below are its own."""

    __slots__ = ("_ended", "_outbox", "_send_scope", "out_bytes", "writing")

    _outbox: deque[tuple[str, int] | Closing] | None
    _ended: bool
    _send_scope: trio.CancelScope | None
    out_bytes: int
    writing: bool

    if TYPE_CHECKING:
        server: ConnectionHost
        ws: trio_websocket.WebSocketConnection
        id: int
        address: str
        close_decision: tuple[int, str] | None
        _batch: BatchingStream
        _nursery: trio.Nursery | None
        _scope: trio.CancelScope

        async def _guarded(self, component: str, body: Any) -> None: ...

        def request_close(self, code: int, reason: str, *, flush: bool = True) -> None: ...

        def send_cut(self, timeout: float) -> None: ...

    def enqueue(self, text: str) -> None:
        """Queue one encoded message; a full outbox means the client is too slow: close 1008.

        Full means ``outbox_size`` messages or ``outbox_bytes`` bytes queued, whichever comes first (a single
        message larger than ``outbox_bytes`` is still accepted into an empty outbox).
        """
        size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        ledger = self.server.quotas.outboxes
        try:
            if self.out_bytes and (self.out_bytes + size > self.server.settings.outbox_bytes
                                   or ledger.would_overflow(self.address, size)):
                raise trio.WouldBlock
            if self._ended:
                return  # the connection is finishing; nothing more goes out
            if self._outbox is None and self._write_direct(text):
                return
            if not self._put((text, size)):
                raise trio.WouldBlock
            self.out_bytes += size
            ledger.add(self.address, size)
        except trio.WouldBlock:
            if self.close_decision is None:
                self.server.errors.note_close(CLOSE_POLICY)
            self.request_close(CLOSE_POLICY, "outbox full: client is not reading fast enough", flush=False)

    def _write_direct(self, text: str) -> bool:
        """Write ``text``'s frame straight to the socket from the calling task when that keeps the order and cannot
        wait: the connection runs, nothing is queued, held or being written, the socket has room and no fault plan
        is active (its ``writer.send``/``ws.send`` points are on the queued path). Saves the writer task's start
        and wake-up and trio-websocket's lock round trip. The rest of a partial write is flushed by the writer.
        False when the frame must be queued instead (nothing was written)."""
        batch = self._batch
        if (self.writing or self._nursery is None or self.close_decision is not None
                or not batch.can_write_nowait() or self.ws._wsproto.state is not ConnectionState.OPEN
                or faults.current_run() is not None):
            return False
        try:
            frame = encode_text(self.ws, text)
        except trio_websocket.ConnectionClosed:
            return False  # the writer meets the same error and ends the connection
        written = batch.write_nowait(frame)
        if 0 < written < len(frame):
            self._start_writer()
        return written > 0

    def _put(self, item: tuple[str, int] | Closing) -> bool:
        """Queue ``item`` and make sure the writer runs; False when the outbox is full or the connection ended."""
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        elif len(outbox) >= self.server.settings.outbox_size or self._ended:
            return False
        outbox.append(item)
        if not self.writing and self._nursery is not None:
            self._start_writer()
        return True

    def _start_writer(self) -> None:
        assert self._nursery is not None
        self.writing = True
        self._nursery.start_soon(self._guarded, "writer", self._writer)

    def send(self, message: dict[str, Any]) -> None:
        """Encode and queue ``message``."""
        self.server.counters.count_sent(message.get("type"))
        self.enqueue(protocol.encode(message))

    # -- the writer task ----------------------------------------------------------------------------
    async def _writer(self) -> None:
        # What is queued when the writer wakes goes out as one batch (at most WRITE_BATCH messages or
        # WRITE_BATCH_BYTES): one deadline scope, one wake-up and, on a batching stream, one socket write.
        # A send is never cancelled half-way by the connection's scope (trio-websocket cannot send again,
        # not even a close frame, after a cut frame): each batch runs shielded under its own deadline, which
        # request_close() shortens. A batch cut by that deadline leaves the stream unusable (``_broken``).
        try:
            await self._write_outbox()
        finally:
            self.writing = False
            if not self._outbox:
                self._outbox = None  # idle: no deque kept (the next message makes a new one)

    async def _write_outbox(self) -> None:
        timeout = 2 * self.server.settings.heartbeat_interval
        outboxes = self.server.quotas.outboxes
        batch = self._batch
        while (outbox := self._outbox) or batch.pending:  # pending: the rest of a partial direct write
            items: list[str] = []
            size = 0
            closing = False
            while outbox and len(items) < WRITE_BATCH and size < WRITE_BATCH_BYTES:
                item = outbox.popleft()
                if item is Closing.CLOSE:
                    closing = True
                    break
                text, n = item
                self.out_bytes -= n
                outboxes.remove(self.address, n)
                items.append(text)
                size += n
            if items or batch.pending:
                with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
                    self._send_scope = scope
                    frames: list[bytes] = []
                    for queued in items:
                        for text in faults.message("writer.send", queued, conn=self.id):  # may drop/duplicate
                            await faults.point("ws.send", conn=self.id)  # a hang here is cut by the deadline
                            frames.append(encode_text(self.ws, text))
                    await write_frames(self.ws, batch, b"".join(frames))  # after what is held: one write
                self._send_scope = None
                if scope.cancelled_caught:
                    self.send_cut(timeout)
                    return
            if closing:
                self._ended = True
                self._scope.cancel()
                return
