"""The heartbeat's side of a connection: the server's shared timer (:class:`~voicebot.server._heartbeat.Heartbeats`)
reads when bytes last arrived and has a ping written here — straight to the socket when nothing else is being
written (no task, no wait for the pong: any bytes from the client count as an answer), else by a short task.

:class:`PingSending` is a mixin of :class:`~voicebot.server._connection.Connection` (which holds the state it
names); it lives apart so that the connection module stays about reading, queueing and writing messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from wsproto.frame_protocol import FrameProtocol

from .. import faults

if TYPE_CHECKING:
    import trio_websocket

    from ._batching import BatchingStream
    from ._hosts import ConnectionHost

__all__ = ["CLOSE_HEARTBEAT", "PING_FRAME", "PingSending"]

#: Close code for a client that sent nothing within two heartbeat intervals of a ping, or stopped reading.
CLOSE_HEARTBEAT = 4002
#: The heartbeat's ping: a server frame (unmasked) with an empty payload, as wsproto encodes it.
PING_FRAME = bytes(FrameProtocol(client=False, extensions=[]).ping(b""))


class PingSending:
    """Ping writing and the 4002 close for a connection; the attributes below are the connection's own."""

    __slots__ = ()

    if TYPE_CHECKING:
        server: ConnectionHost
        ws: trio_websocket.WebSocketConnection
        id: int
        close_decision: tuple[int, str] | None
        _batch: BatchingStream
        _nursery: trio.Nursery | None

        async def _guarded(self, component: str, body: Any) -> None: ...

        def request_close(self, code: int, reason: str, *, flush: bool = True) -> None: ...

        def send_cut(self, timeout: float) -> None: ...

    @property
    def last_received(self) -> float:
        """Trio time at which bytes last arrived from the client (any frame, a pong or a message)."""
        return self._batch.received_at

    def send_ping(self) -> bool:
        """Send a ping frame: written at once when the socket is free and has room, else by a short task in this
        connection's nursery (also whenever a fault plan is active, so ``heartbeat.ping`` can delay or hang it).
        False once the connection is ending."""
        if self._nursery is None or self.close_decision is not None or self.ws.closed is not None:
            return False
        written = 0 if faults.current_run() is not None else self._batch.write_nowait(PING_FRAME)
        if written < len(PING_FRAME):
            self._nursery.start_soon(self._guarded, "heartbeat", self._ping_later if written else self._ping_task)
        return True

    async def _ping_task(self) -> None:
        await faults.point("heartbeat.ping", conn=self.id)
        await self._send_ping_part(PING_FRAME)

    async def _ping_later(self) -> None:
        await self._send_ping_part(None)

    async def _send_ping_part(self, frame: bytes | None) -> None:
        """Write ``frame`` (None: the rest of a ping held by :meth:`BatchingStream.write_nowait`), shielded under a
        deadline like the writer's sends (a cut frame leaves the stream unusable)."""
        timeout = 2 * self.server.settings.heartbeat_interval
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + timeout
            if frame is None:
                await self._batch.flush()
            elif self.ws.closed is None:  # no close frame went out meanwhile
                await self._batch.send_all(frame)
        if scope.cancelled_caught:
            self.send_cut(timeout)

    def ping_missed(self) -> None:
        """No bytes within two heartbeat intervals of a ping: close 4002 without flushing (the client is not
        reading)."""
        self.request_close(CLOSE_HEARTBEAT, "heartbeat timeout: no pong within 2 intervals", flush=False)
