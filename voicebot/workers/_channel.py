"""The private channel between ``voicebot serve`` and its local worker process: one Unix socket pair.

The hub sends one line of JSON (the worker's token, capacity and the serve settings) and nothing after. The
child then sends one-byte messages: ``c`` carries one end of a fresh socket pair (``SCM_RIGHTS``), which the hub
serves as a connection of the process's own (its WebSocket handshake, ``hello`` and worker token follow as for any
worker); ``r`` says the child's worker registered. The hub's token never appears on a command line or in an
environment, and there is no listening socket another local user could reach. End of file on either side means
the other process is gone.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import trio

__all__ = ["CONNECT", "MAX_CONFIG_BYTES", "REGISTERED", "read_config", "receive", "send", "send_config"]

CONNECT = b"c"
REGISTERED = b"r"
#: Largest configuration line the child accepts.
MAX_CONFIG_BYTES = 1 << 20


async def send_config(sock: socket.socket, config: dict[str, Any]) -> None:
    """Hub side: send the configuration line on the non-blocking ``sock``."""
    data = json.dumps(config).encode() + b"\n"
    while data:
        await trio.lowlevel.wait_writable(sock)
        try:
            data = data[sock.send(data):]
        except BlockingIOError:
            continue


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
