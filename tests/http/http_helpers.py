"""Helpers for the HTTP surface tests: a real TCP server and an h11 client (no hand-written HTTP)."""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import h11
import trio

from voicebot.server import Server
from voicebot.testing import FakePasswordHasher, settings_for_tests


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@asynccontextmanager
async def tcp_server(**settings: Any) -> AsyncIterator[Server]:
    """A real server on 127.0.0.1 with a free port (real clock)."""
    server = Server(settings_for_tests(port=0, **settings), rng=random.Random(3), passwords=FakePasswordHasher())
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server
        finally:
            server.shutdown()


async def open_stream(port: int, ssl_context: ssl.SSLContext | None = None,
                      server_hostname: str = "localhost") -> trio.abc.Stream:
    stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
    if ssl_context is not None:
        stream = trio.SSLStream(stream, ssl_context, server_hostname=server_hostname, https_compatible=True)
    return stream


async def exchange(stream: trio.abc.Stream, conn: h11.Connection, method: str, path: str,
                   headers: dict[str, str] | None = None) -> Reply:
    """One request/response on a (keep-alive) connection."""
    hdrs = {"host": "localhost", **(headers or {})}
    await stream.send_all(conn.send(h11.Request(method=method, target=path, headers=list(hdrs.items()))) or b"")
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
    status, got, body = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        if isinstance(event, h11.Response | h11.InformationalResponse):
            status = event.status_code
            got = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return Reply(status, got, body)


async def fetch(port: int, method: str, path: str, headers: dict[str, str] | None = None,
                ssl_context: ssl.SSLContext | None = None) -> Reply:
    """One request on a fresh connection."""
    with trio.fail_after(10):
        stream = await open_stream(port, ssl_context)
        try:
            return await exchange(stream, h11.Connection(h11.CLIENT), method, path, headers)
        finally:
            await trio.aclose_forcefully(stream)
