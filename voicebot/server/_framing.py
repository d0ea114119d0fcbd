"""Text messages framed with a WebSocket's own wsproto connection, without trio-websocket's per-message send.

trio-websocket's ``send_message`` encodes the frame, then takes the WebSocket's stream lock (a scheduling round
trip even when nobody holds it) and writes the frame alone. A connection's writer that sends many messages frames
them here instead — the same checks, the same bytes — and writes them with one ``send_all``; a connection whose
socket is idle writes one frame straight from the sending task (see :meth:`BatchingStream.write_nowait`).

Order stays exact: every frame is encoded by the same wsproto connection trio-websocket uses (once it has encoded
the close frame, encoding a message raises), frames are never fragmented (no message frame can be split by a
control frame) and every write, ours and trio-websocket's, goes through the same :class:`BatchingStream` lock.

This reads trio-websocket's private ``_close_reason`` and ``_wsproto`` and calls ``_abort_web_socket`` exactly where
its own ``_send`` does (trio-websocket is pinned by the dependency's version range).
"""

from __future__ import annotations

import trio
import trio_websocket
from wsproto.events import TextMessage

from .. import protocol
from ._batching import BatchingStream

__all__ = ["encode_text", "write_frames"]


def encode_text(ws: trio_websocket.WebSocketConnection, text: str) -> bytes:
    """The frame ``ws.send_message(text)`` would write (a lone surrogate becomes U+FFFD, see
    :func:`voicebot.protocol.sendable`); raises :class:`trio_websocket.ConnectionClosed` as ``send_message`` does
    once the WebSocket is closed or closing."""
    reason = ws._close_reason
    if reason:
        raise trio_websocket.ConnectionClosed(reason)
    try:
        return ws._wsproto.send(TextMessage(data=text))
    except UnicodeEncodeError:  # wsproto encodes before it touches its state: frame the repaired text instead
        return ws._wsproto.send(TextMessage(data=protocol.sendable(text)))


async def write_frames(ws: trio_websocket.WebSocketConnection, stream: BatchingStream, data: bytes) -> None:
    """Write frames made by :func:`encode_text` to ``ws``'s stream; a broken or closed stream aborts the WebSocket
    and raises :class:`trio_websocket.ConnectionClosed`, as trio-websocket's own writes do."""
    try:
        stream.hold()  # frames written meanwhile (pings, pongs) and the rest of a partial write join this write
        await stream.send_all(data)
        await stream.flush()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await ws._abort_web_socket()
        assert ws._close_reason is not None
        raise trio_websocket.ConnectionClosed(ws._close_reason) from None
