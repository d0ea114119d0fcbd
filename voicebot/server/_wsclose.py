"""Answer WebSocket protocol errors with their close codes (RFC 6455 §7.4.1) instead of a silent TCP drop.

wsproto detects a bad frame (invalid UTF-8 in a text frame → 1007; RSV bits without an extension, a reserved
opcode, an unmasked client frame, a bad control frame → 1002) by raising ``ParseFailed`` internally and yielding
a ``CloseConnection(code)`` event while its state is still ``OPEN``. trio-websocket (0.12) handles that event like a
close frame the peer sent, but only answers a close when the state is ``REMOTE_CLOSING`` — so the client got no
close frame at all. :func:`answer_protocol_errors` marks such locally-detected closes as ``REMOTE_CLOSING`` (the
state a received close frame would have produced) so trio-websocket sends the close frame with that code before it
drops the stream. Oversized messages (1009, fragmented or not) are already answered by trio-websocket.

This touches wsproto's connection object of one WebSocket (private attributes ``connection``/``_state``, pinned
by the ``wsproto`` version range); :func:`answer_protocol_errors` checks they exist and otherwise does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import trio_websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event

__all__ = ["answer_protocol_errors"]

log = logging.getLogger("voicebot.server")


def answer_protocol_errors(ws: trio_websocket.WebSocketConnection) -> bool:
    """Make ``ws`` answer a protocol error detected in the client's frames with a close frame carrying its code.

    Returns False (and changes nothing) if the installed wsproto does not have the expected shape.
    """
    inner: Any = getattr(getattr(ws, "_wsproto", None), "connection", None)
    if inner is None or not hasattr(inner, "_state") or not callable(getattr(inner, "events", None)):
        log.warning("wsproto internals changed: protocol errors close without a close frame")
        return False
    original = inner.events

    def events() -> Generator[Event, None, None]:
        for event in original():
            if isinstance(event, CloseConnection) and inner.state is ConnectionState.OPEN:
                # Not a close frame from the peer (that would have moved the state): wsproto's own verdict on
                # a malformed frame. Reply to it as to a close frame, with the same code.
                inner._state = ConnectionState.REMOTE_CLOSING
            yield event

    inner.events = events
    return True
