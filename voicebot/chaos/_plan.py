"""The built-in chaos plan: BUGGIFY-style random rules over every injection point the server has."""

from __future__ import annotations

import sqlite3

import trio

from voicebot import faults

__all__ = ["POINTS", "default_plan"]

#: Every injection point in production code (name: call type and where it is).
POINTS: dict[str, str] = {
    "ws.recv": "message: each received frame (server/_connection.py _reader)",
    "writer.send": "message: each outgoing message (server/_connection.py _writer)",
    "ws.send": "point: before each WebSocket send, inside the bounded send scope (_writer)",
    "heartbeat.ping": "point: before each ping, inside the pong deadline (server/_connection.py _ping)",
    "hub.dispatch": "point: start of Server.dispatch (every validated request)",
    "store.write": "point: each write attempt, inside the store guard (store/_sqlite.py _write)",
    "store.read": "point: each read attempt, inside the read guard (store/_sqlite.py _read)",
    "media.setup": "point: before creating an RTCPeerConnection (media/_peer.py _lifecycle)",
    "media.close": "check: before waiting for pc.close() (media/_peer.py _close_once)",
}


def default_plan() -> faults.Plan:
    """Each point is activated per seed with probability ``p`` and then fires per hit with ``q``.

    Covers every fault kind: raise (foreign and mapped exceptions), delay, hang, disconnect, drop,
    duplicate and corrupt.
    """
    locked = faults.raises(sqlite3.OperationalError, "database is locked")
    return faults.Plan(
        name="chaos-default",
        random=(
            faults.RandomRule(point="ws.recv", p=0.4, q=0.06, faults=(
                (faults.drop(), 3), (faults.duplicate(), 2), (faults.corrupt(), 3), (faults.disconnect("recv"), 1),
            )),
            faults.RandomRule(point="writer.send", p=0.3, q=0.03, faults=(
                (faults.drop(), 2), (faults.duplicate(), 2), (faults.corrupt(), 1), (faults.disconnect("send"), 1),
            )),
            faults.RandomRule(point="ws.send", p=0.3, q=0.02, faults=(
                (faults.delay(0.5), 3), (faults.hang(), 1), (faults.raises(ConnectionResetError, "reset"), 1),
            )),
            faults.RandomRule(point="heartbeat.ping", p=0.3, q=0.2, faults=(
                (faults.delay(3.0), 2), (faults.hang(), 1), (faults.disconnect("ping"), 1),
            )),
            faults.RandomRule(point="hub.dispatch", p=0.5, q=0.05, faults=(
                (faults.raises(ValueError, "injected bug"), 2), (faults.raises(trio.TooSlowError), 2),
                (faults.raises(MemoryError), 1), (faults.delay(0.2), 2), (faults.disconnect("dispatch"), 1),
                (locked, 1),
            )),
            faults.RandomRule(point="store.write", p=0.5, q=0.25, faults=(
                (locked, 3), (faults.delay(1.0), 1), (faults.hang(), 1),
            )),
            faults.RandomRule(point="store.read", p=0.5, q=0.2, faults=((locked, 2), (faults.delay(0.5), 1))),
        ),
    )
