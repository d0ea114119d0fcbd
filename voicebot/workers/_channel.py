"""The private channel between ``voicebot serve`` and its local worker process: one Unix socket pair.

The hub sends one line of JSON (the worker's token, capacity and the serve settings) and nothing after. The
child then sends messages that start with one byte: ``c`` carries one end of a fresh socket pair (``SCM_RIGHTS``),
which the hub serves as a connection of the process's own (its WebSocket handshake, ``hello`` and worker token
follow as for any worker); ``r`` says the child's worker registered; ``s`` is followed by a 4-byte big-endian
length and that many bytes of JSON: the child's assistant analytics for ``admin.stats`` (at most
:data:`MAX_STATS_BYTES`). The child's senders share one lock, so a message is never split by another's. The
hub's token never appears on a command line or in an environment, and there is no listening socket another local
user could reach. End of file on either side means the other process is gone.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import trio

__all__ = ["CONNECT", "MAX_CONFIG_BYTES", "MAX_STATS_BYTES", "REGISTERED", "STATS", "read_config", "read_stats",
           "receive", "send", "send_config", "send_stats"]

CONNECT = b"c"
REGISTERED = b"r"
STATS = b"s"
#: Largest stats message the hub accepts (a larger one ends the channel: the child is restarted).
MAX_STATS_BYTES = 4 << 20
#: Largest configuration line the child accepts.
MAX_CONFIG_BYTES = 1 << 20


async def _send_all(sock: socket.socket, data: bytes) -> None:
    while data:
        await trio.lowlevel.wait_writable(sock)
        try:
            data = data[sock.send(data):]
        except BlockingIOError:
            continue


async def send_config(sock: socket.socket, config: dict[str, Any]) -> None:
    """Hub side: send the configuration line on the non-blocking ``sock``."""
    await _send_all(sock, json.dumps(config).encode() + b"\n")


async def send_stats(sock: socket.socket, stats: dict[str, Any]) -> None:
    """Child side (holding the senders' lock): send a :data:`STATS` message."""
    data = json.dumps(stats).encode()
    if len(data) > MAX_STATS_BYTES:
        raise ValueError("stats too large for the channel")
    await _send_all(sock, STATS + len(data).to_bytes(4, "big") + data)


async def read_stats(sock: socket.socket) -> dict[str, Any]:
    """Hub side, after :func:`receive` returned :data:`STATS`: the message's JSON object. ``EOFError`` if the
    channel ends first, ``ValueError`` if the message is too large or not an object."""
    size = int.from_bytes(await _read_exact(sock, 4), "big")
    if size > MAX_STATS_BYTES:
        raise ValueError(f"stats message of {size} bytes")
    stats = json.loads(await _read_exact(sock, size))
    if not isinstance(stats, dict):
        raise ValueError("stats message is not an object")
    return stats


async def _read_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        await trio.lowlevel.wait_readable(sock)
        try:
            chunk = sock.recv(size - len(buf))
        except BlockingIOError:
            continue
        if not chunk:
            raise EOFError("the channel ended inside a message")
        buf += chunk
    return bytes(buf)


def read_config(sock: socket.socket, timeout: float) -> dict[str, Any]:
    """Child side, before its Trio run: read the configuration line (blocking, within ``timeout`` seconds);
    ``EOFError`` when the hub closed the channel first."""
    sock.settimeout(timeout)
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("the hub closed the channel before sending the configuration")
        buf += chunk
        if len(buf) > MAX_CONFIG_BYTES:
            raise ValueError("configuration line too long")
    config = json.loads(buf)
    if not isinstance(config, dict):
        raise ValueError("configuration is not an object")
    return config


async def send(sock: socket.socket, kind: bytes, fd: int | None = None) -> None:
    """Send one message (with ``fd`` attached for :data:`CONNECT`) on the non-blocking ``sock``. One ``sendmsg``
    per message, so messages of concurrent tasks never interleave."""
    while True:
        await trio.lowlevel.wait_writable(sock)
        try:
            if fd is None:
                sock.send(kind)
            else:
                socket.send_fds(sock, [kind], [fd])
            return
        except BlockingIOError:
            continue


async def receive(sock: socket.socket) -> tuple[bytes, socket.socket | None]:
    """Receive one message on the non-blocking ``sock``: ``(kind, attached socket or None)``; ``(b"", None)`` at
    end of file. Descriptors beyond the first of a message are closed."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1, 4)
        except BlockingIOError:
            continue
        attached = None
        for i, fd in enumerate(fds):
            if i == 0 and data == CONNECT:
                attached = socket.socket(fileno=fd)
            else:
                socket.close(fd)
        return data, attached
