"""Answer WebSocket protocol errors with their close codes (RFC 6455 §7.4.1) instead of a silent TCP drop.

wsproto detects a bad frame (invalid UTF-8 in a text frame → 1007; RSV bits without an extension, a reserved
opcode, an unmasked client frame, a bad control frame → 1002) by raising ``ParseFailed`` internally and yielding
a ``CloseConnection(code)`` event while its state is still ``OPEN``. trio-websocket (0.12) handles that event like a
close frame the peer sent, but only answers a close when the state is ``REMOTE_CLOSING`` — so the client got no
close frame at all. :func:`answer_protocol_errors` marks such locally-detected closes as ``REMOTE_CLOSING`` (the
state a received close frame would have produced) so trio-websocket sends the close frame with that code before it
drops the stream. Oversized messages (1009, fragmented or not) are already answered by trio-websocket.

This touches wsproto's connection object of one WebSocket (private attributes ``connection``/``_state``; its class
becomes a subclass overriding ``events``); :func:`answer_protocol_errors` checks the shape and otherwise does
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import trio_websocket
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection, Event

__all__ = ["answer_protocol_errors"]

log = logging.getLogger("voicebot.server")


def answer_protocol_errors(ws: trio_websocket.WebSocketConnection) -> bool:
    """Make ``ws`` answer a protocol error detected in the client's frames with a close frame carrying its code.

    Returns False (and changes nothing) if the installed wsproto does not have the expected shape.
    """
    inner: Any = getattr(getattr(ws, "_wsproto", None), "connection", None)
    if type(inner) is _AnsweringConnection:
        return True
    if type(inner) is not Connection or not hasattr(inner, "_state"):
        log.warning("wsproto internals changed: protocol errors close without a close frame")
        return False
    # The class, not a wrapper per connection: thousands of connections share its one ``events``.
    inner.__class__ = _AnsweringConnection
    return True


class _AnsweringConnection(Connection):
    """wsproto's connection whose locally detected protocol errors read as a close frame received (see above)."""

    def events(self) -> Generator[Event, None, None]:
        """wsproto's events; a ``CloseConnection`` while still ``OPEN`` moves the state to ``REMOTE_CLOSING``."""
        for event in super().events():
            if isinstance(event, CloseConnection) and self.state is ConnectionState.OPEN:
                # Not a close frame from the peer (that would have moved the state): wsproto's own verdict on
                # a malformed frame. Reply to it as to a close frame, with the same code.
                self._state = ConnectionState.REMOTE_CLOSING
            yield event
