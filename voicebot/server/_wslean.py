"""Let an open server WebSocket drop what it kept of its opening handshake.

wsproto's ``WSConnection`` keeps its ``H11Handshake`` for the connection's whole life: an ``h11.Connection`` (its
state machine, receive buffer and reader) and an events deque, about 1.7 KiB per connection, although once the
WebSocket is open every byte and event goes through the ``wsproto.connection.Connection`` it made and the handshake
is only asked for its (then always empty) events. trio-websocket keeps ``_open_handshake``, an event set when the
server accepted and waited on only by the client side. :func:`release_handshake` lets both go; thousands of idle
connections hold thousands of them.

These are private attributes of wsproto (``handshake._h11_connection``, ``handshake._events``) and trio-websocket
(``_open_handshake``), pinned by the versions in ``pyproject.toml``: :func:`release_handshake` checks their shape
and otherwise changes nothing (a test fails if the installed libraries no longer have it).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import trio
import trio_websocket
from wsproto.connection import ConnectionState

__all__ = ["SET_EVENT", "release_handshake"]

log = logging.getLogger("voicebot.server")

SET_EVENT = trio.Event()
"""An event that is already set, shared by every holder of an event that was set and is never waited on again."""
SET_EVENT.set()


def release_handshake(ws: trio_websocket.WebSocketConnection) -> bool:
    """Drop the handshake state an accepted server WebSocket ``ws`` keeps but never uses again.

    Returns False (and changes nothing) unless ``ws`` is open and the libraries have the expected shape.
    """
    wsproto: Any = getattr(ws, "_wsproto", None)
    handshake: Any = getattr(wsproto, "handshake", None)
    if (
        not hasattr(wsproto, "connection") or not isinstance(getattr(handshake, "_events", None), deque)
        or not hasattr(handshake, "_h11_connection") or not isinstance(getattr(ws, "_open_handshake", None), trio.Event)
    ):
        log.warning("wsproto/trio-websocket internals changed: each connection keeps its handshake state")
        return False
    if wsproto.client or wsproto.connection is None or wsproto.state is not ConnectionState.OPEN or handshake._events:
        return False  # not an open server WebSocket, or a handshake event still to be read: nothing is dropped
    handshake._h11_connection = None
    handshake._events = _NO_EVENTS
    ws._open_handshake = SET_EVENT
    return True


_NO_EVENTS: deque[Any] = deque(maxlen=0)
"""The handshake's events once open: always empty (``maxlen=0``: an append could not keep anything either)."""
