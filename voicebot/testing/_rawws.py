"""A raw WebSocket client over Trio TCP that can send any frame, valid or not (tests and ``scripts/fuzz_ws.py``).

Unlike a real client library it lets the caller set RSV bits, reserved opcodes, masking and fragmentation, and it
reads the server's frames back as they are (close code included), so protocol-error handling can be tested on the
wire.
"""

from __future__ import annotations

import base64
import os
import struct

import trio

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG", "OP_TEXT", "RawWebSocket", "frame"]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True,
          mask_key: bytes | None = None) -> bytes:
    """Encode one frame; ``rsv`` is the 3 RSV bits (0–7); clients must mask (``mask=False`` breaks the rule)."""
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + _xor(payload, key)


def _xor(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


class RawWebSocket:
    """One raw connection: ``await RawWebSocket.connect(host, port)``, then :meth:`send` bytes and :meth:`read`
    frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buf = bytearray()

    @classmethod
    async def connect(cls, host: str, port: int, path: str = "/ws") -> RawWebSocket:
        """Open TCP and complete the opening handshake (raises ConnectionError if the server refuses)."""
        stream = await trio.open_tcp_stream(host, port)
        ws = cls(stream)
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        while b"\r\n\r\n" not in ws._buf:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("closed during handshake")
            ws._buf += chunk
        head, _, rest = bytes(ws._buf).partition(b"\r\n\r\n")
        ws._buf = bytearray(rest)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            await stream.aclose()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        return ws

    async def send(self, data: bytes) -> None:
        """Send raw bytes (one or more frames, or garbage)."""
        await self.stream.send_all(data)

    async def send_text(self, text: str) -> None:
        """Send one masked text frame."""
        await self.send(frame(OP_TEXT, text.encode("utf-8", "surrogatepass")))

    async def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return False
            self._buf += chunk
        return True

    async def read(self) -> tuple[int, bytes] | None:
        """The next frame ``(opcode, payload)`` from the server, or None when TCP ended (or was reset)."""
        try:
            if not await self._fill(2):
                return None
            b0, b1 = self._buf[0], self._buf[1]
            n, offset = b1 & 0x7F, 2
            if n == 126:
                if not await self._fill(4):
                    return None
                n, offset = struct.unpack("!H", self._buf[2:4])[0], 4
            elif n == 127:
                if not await self._fill(10):
                    return None
                n, offset = struct.unpack("!Q", self._buf[2:10])[0], 10
            if not await self._fill(offset + n):
                return None
        except trio.BrokenResourceError:
            return None
        payload = bytes(self._buf[offset: offset + n])
        del self._buf[: offset + n]
        return b0 & 0x0F, payload

    async def read_close(self) -> tuple[int | None, list[tuple[int, bytes]]]:
        """Read until the server's close frame; return its code (None: TCP ended without one) and the frames
        received before it."""
        before: list[tuple[int, bytes]] = []
        while True:
            got = await self.read()
            if got is None:
                return None, before
            opcode, payload = got
            if opcode == OP_CLOSE:
                return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), before
            before.append(got)

    async def aclose(self) -> None:
        """Close TCP."""
        await self.stream.aclose()
