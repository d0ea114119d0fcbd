"""Let an open server WebSocket drop what it kept of its opening handshake.

wsproto's ``WSConnection`` keeps its ``H11Handshake`` for the connection's whole life: an ``h11.Connection`` (its
state machine, receive buffer and reader) and an events deque, about 1.7 KiB per connection, although once the
WebSocket is open every byte and event goes through the ``wsproto.connection.Connection`` it made and the handshake
is only asked for its (then always empty) events. trio-websocket keeps ``_open_handshake``, an event set when the
server accepted and waited on only by the client side, and ``_for_testing_peer_closed_connection``, an event it
sets when the peer closes and only its own test suite waits on. :func:`release_handshake` lets them go (both events
become one shared, set event); thousands of idle connections hold thousands of them.

An idle client's only traffic is its pong to the heartbeat's ping; :func:`is_lone_pong` recognises one so the
stream under the WebSocket can note it as a sign of life without waking wsproto and trio-websocket for it.

These are private attributes of wsproto (``handshake._h11_connection``, ``handshake._events``, the frame
decoder's header and buffer, the connection's pending events) and trio-websocket (``_open_handshake``,
``_for_testing_peer_closed_connection``, ``_pings``) as of wsproto 1.3 and trio-websocket 0.12: both functions
check their shape and otherwise change nothing, and ``tests/server/test_wslean.py`` fails if the installed libraries
no longer have it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import trio
import trio_websocket
from wsproto.connection import ConnectionState

__all__ = ["LONE_PONG_SIZE", "SET_EVENT", "is_lone_pong", "release_handshake"]

log = logging.getLogger("voicebot.server")

SET_EVENT = trio.Event()
"""An event that is already set, shared in place of per-connection events nothing waits on any more."""
SET_EVENT.set()


def release_handshake(ws: trio_websocket.WebSocketConnection) -> bool:
    """Drop the handshake state an accepted server WebSocket ``ws`` keeps but never uses again.

    Returns False (and changes nothing) unless ``ws`` is open and the libraries have the expected shape.
    """
    wsproto: Any = getattr(ws, "_wsproto", None)
    handshake: Any = getattr(wsproto, "handshake", None)
    if (
        not hasattr(wsproto, "connection") or not isinstance(getattr(handshake, "_events", None), deque)
        or not hasattr(handshake, "_h11_connection")
        or not all(isinstance(getattr(ws, name, None), trio.Event) for name in _SPARED_EVENTS)
    ):
        log.warning("wsproto/trio-websocket internals changed: each connection keeps its handshake state")
        return False
    if wsproto.client or wsproto.connection is None or wsproto.state is not ConnectionState.OPEN or handshake._events:
        return False  # not an open server WebSocket, or a handshake event still to be read: nothing is dropped
    handshake._h11_connection = None
    handshake._events = _NO_EVENTS
    for name in _SPARED_EVENTS:
        setattr(ws, name, SET_EVENT)
    return True


_SPARED_EVENTS = ("_open_handshake", "_for_testing_peer_closed_connection")
"""trio-websocket's events that a server connection, once open, never waits on (the first is set already)."""


_NO_EVENTS: deque[Any] = deque(maxlen=0)
"""The handshake's events once open: always empty (``maxlen=0``: an append could not keep anything either)."""


#: A client's pong with an empty payload, as the heartbeat's ping is answered: FIN + opcode 0xA, then the mask bit
#: with length 0; four mask bytes follow.
_PONG_HEAD = (0x8A, 0x80)
LONE_PONG_SIZE = 6
"""Bytes of that frame (a cheap first test for callers on a hot path)."""


def is_lone_pong(data: bytes | bytearray, ws: trio_websocket.WebSocketConnection) -> bool:
    """Whether ``data``, just received for ``ws``, is exactly one masked empty pong frame that starts at a frame
    boundary of ``ws``'s open connection, with no ping of trio-websocket's own waiting for an answer.

    Such bytes need not reach wsproto at all: they make no event trio-websocket acts on (it ignores a pong that
    answers none of its pings), and their arrival was already noted as a sign of life by whoever received them.
    Skipping them spares the reader wsproto's frame parsing and trio-websocket's event dispatch once per
    heartbeat. Anything else (more or fewer bytes, another frame, a partial frame pending, a closing connection,
    internals of another shape) is False: the bytes go through as usual.
    """
    if len(data) != LONE_PONG_SIZE or data[0] != _PONG_HEAD[0] or data[1] != _PONG_HEAD[1]:
        return False
    connection: Any = getattr(getattr(ws, "_wsproto", None), "connection", None)
    decoder: Any = getattr(getattr(connection, "_proto", None), "_frame_decoder", None)
    buffered: Any = getattr(getattr(decoder, "buffer", None), "buffer", None)
    return (
        isinstance(buffered, bytearray) and not buffered and getattr(decoder, "header", 0) is None
        and connection.state is ConnectionState.OPEN and not connection._events and not ws._pings
    )
