"""A Trio client for protocol v1: request/reply by ``id``, pushed events on a bounded channel, resume."""

from __future__ import annotations

import itertools
import json
import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket

from ..errors import Category, Severity, VoiceBotError
from ..protocol import encode, sendable

__all__ = ["Client", "RemoteError", "connect", "connect_stream"]

DEFAULT_TIMEOUT = 10.0
#: Seconds leaving a connection waits for the peer's close reply.
CLOSE_WAIT = 2.0
#: The same when the client is being cancelled (its reader is cancelled too, so no reply can be seen): just long
#: enough for the close frame to go out.
CANCELLED_CLOSE_WAIT = 0.1


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class RemoteError(VoiceBotError):
    """An ``error`` message from the server, as an exception (fields as on the wire)."""

    correlation_id: str | None = None
    reply: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> RemoteError:
        """Build from an ``error`` message."""
        return cls(
            str(message.get("message", "")), code=str(message.get("code", "unknown")),
            category=Category(message.get("category", "system")),
            severity=Severity[str(message.get("severity", "low")).upper()],
            retryable=bool(message.get("retryable", False)), field=message.get("field"),
            retry_after=message.get("retry_after"), correlation_id=message.get("correlation_id"), reply=message,
        )


class Client:
    """A connected client. Use :func:`connect` or :func:`connect_stream`, then :meth:`hello`.

    Replies to requests are matched by ``id``; everything else arrives on :attr:`events` (bounded:
    when ``event_buffer`` events are unread the reader waits, which backpressures the server, which may
    then close this slow client with 1008 — read your events).
    """

    def __init__(self, ws: trio_websocket.WebSocketConnection, event_buffer: int = 1000) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._events_send, self.events = trio.open_memory_channel[dict[str, Any]](event_buffer)
        self.peer_id: str | None = None
        self.resume_token: str | None = None
        self.lobby_id: str | None = None
        self.welcome: dict[str, Any] = {}
        self.closed: trio_websocket.CloseReason | None = None

    async def _reader(self) -> None:
        try:
            while True:
                message = json.loads(await self.ws.get_message())
                waiter = self._pending.pop(message.get("reply_to"), None) if "reply_to" in message else None
                if waiter is not None:
                    waiter.send_nowait(message)
                else:
                    await self._events_send.send(message)
        except trio_websocket.ConnectionClosed as exc:
            self.closed = exc.reason
        finally:
            self._events_send.close()
            for waiter in self._pending.values():
                waiter.close()

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message as is (no reply expected). Text the server would refuse as invalid Unicode (a lone
        surrogate) goes out as U+FFFD, so this writer never dies on what it is given and never has its reports
        refused (see :func:`voicebot.protocol.encode`)."""
        await self.ws.send_message(encode(message))

    async def send_raw(self, text: str | bytes) -> None:
        """Send a raw frame (tests use this for malformed input; a ``str`` is made sendable, see :meth:`send`)."""
        await self.ws.send_message(sendable(text) if isinstance(text, str) else text)

    async def request(self, type_: str, *, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Send ``{type, id, **fields}`` and return the reply; an ``error`` reply raises :class:`RemoteError`."""
        rid = next(self._ids)
        send, recv = trio.open_memory_channel[dict[str, Any]](1)
        self._pending[rid] = send
        try:
            await self.send({"type": type_, "id": rid, **fields})
            with trio.fail_after(timeout):
                try:
                    reply = await recv.receive()
                except trio.EndOfChannel:
                    raise trio_websocket.ConnectionClosed(self.closed) from None
        finally:
            self._pending.pop(rid, None)
        if reply.get("type") == "error":
            raise RemoteError.from_wire(reply)
        return reply

    async def hello(self, name: str, **fields: Any) -> dict[str, Any]:
        """Say hello (``resume=`` a token to resume); remembers peer id, token and lobby."""
        welcome = await self.request("hello", name=name, **fields)
        self.welcome = welcome
        self.peer_id = welcome["peer_id"]
        self.resume_token = welcome["resume_token"]
        self.lobby_id = welcome.get("lobby_id")
        return welcome

    async def create_lobby(self, name: str, **fields: Any) -> dict[str, Any]:
        """``lobby.create``; returns the ``lobby`` object."""
        reply = await self.request("lobby.create", name=name, **fields)
        lobby: dict[str, Any] = reply["lobby"]
        return lobby

    async def list_lobbies(self, *, page_size: int = 100) -> list[dict[str, Any]]:
        """Every public lobby, following ``lobby.list`` pages (``next_cursor``) until the last one."""
        lobbies: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page: dict[str, Any] = {"limit": page_size} if cursor is None else {"limit": page_size, "cursor": cursor}
            reply = await self.request("lobby.list", **page)
            lobbies.extend(reply["lobbies"])
            cursor = reply.get("next_cursor")
            if cursor is None:
                return lobbies

    async def join(self, lobby_id: str, **fields: Any) -> dict[str, Any]:
        """``lobby.join``; returns the ``lobby.joined`` reply."""
        reply = await self.request("lobby.join", lobby_id=lobby_id, **fields)
        self.lobby_id = lobby_id
        return reply

    async def leave(self) -> dict[str, Any]:
        """``lobby.leave``."""
        reply = await self.request("lobby.leave")
        self.lobby_id = None
        return reply

    async def signal(self, to: str, kind: str, **fields: Any) -> None:
        """Relay a signal to ``to`` (fire and forget; errors arrive as events)."""
        await self.send({"type": "signal", "to": to, "kind": kind, **fields})

    async def chat(self, text: str) -> None:
        """Send a chat line (it comes back as a ``chat`` event)."""
        await self.send({"type": "chat", "text": text})

    async def caption(self, text: str, *, role: str = "user", final: bool = True, about: str | None = None,
                      turn_id: str | None = None) -> None:
        """Send a caption line (``about``/``role: "assistant"`` for bots; it comes back as a ``caption`` event)."""
        message: dict[str, Any] = {"type": "caption", "text": text, "role": role, "final": final}
        if about is not None:
            message["about"] = about
        if turn_id is not None:
            message["turn_id"] = turn_id
        await self.send(message)

    async def bot_status(self, state: str, detail: str | None = None) -> None:
        """Bots: announce ``state`` (``listening``/``thinking``/``speaking``/``degraded``) to the lobby."""
        message: dict[str, Any] = {"type": "bot.status", "state": state}
        if detail is not None:
            message["detail"] = detail
        await self.send(message)

    async def next_event(self, type_: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next pushed event (of ``type_``, skipping others); raises TooSlowError on timeout."""
        with trio.fail_after(timeout):
            async for event in self.events:
                if type_ is None or event.get("type") == type_:
                    return event
        raise trio_websocket.ConnectionClosed(self.closed)

    async def wait_closed(self, *, timeout: float = math.inf) -> trio_websocket.CloseReason | None:
        """Wait until the server closes the connection; return the close reason."""
        with trio.fail_after(timeout):
            async for _ in self.events:
                pass
        return self.closed

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection."""
        await self.ws.aclose(code, reason)


@asynccontextmanager
async def _running(ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> AsyncIterator[Client]:
    client = Client(ws)
    nursery.start_soon(client._reader)
    try:
        yield client
    finally:
        # When the client is being cancelled, so is trio-websocket's reader task: the peer's close frame can no
        # longer be seen, so the close frame goes out but its reply is not waited for (a cancelled bot would
        # otherwise always hold its worker slot for the full wait).
        cancelled = trio.current_effective_deadline() == -math.inf
        with trio.move_on_after(CANCELLED_CLOSE_WAIT if cancelled else CLOSE_WAIT) as scope:
            scope.shield = True
            await ws.aclose()
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def connect(url: str, *, connect_timeout: float = DEFAULT_TIMEOUT,
                  ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Client]:
    """Connect to ``ws://host:port/ws`` or ``wss://…`` (verified with ``ssl_context``, by default the system's
    trust store and the URL's host name)."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(connect_timeout):
            if url.lower().startswith("wss://"):
                ws = await _connect_tls(nursery, url, ssl_context or ssl.create_default_context())
            else:
                ws = await trio_websocket.connect_websocket_url(nursery, url)
        async with _running(ws, nursery) as client:
            yield client


async def _connect_tls(nursery: trio.Nursery, url: str, context: ssl.SSLContext) -> trio_websocket.WebSocketConnection:
    """TLS first (so a certificate that fails verification raises at once, with the ``ssl`` error as the cause,
    instead of a handshake that never completes), then the WebSocket handshake over it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if port == 443 else f"{host}:{port}"
    return await trio_websocket.wrap_client_stream(nursery, stream, host_header, resource)


@asynccontextmanager
async def connect_stream(stream: trio.abc.Stream, *, path: str = "/ws") -> AsyncIterator[Client]:
    """Speak the protocol over an already-open stream (tests use in-memory streams)."""
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, "localhost", path)  # type: ignore[arg-type]
        async with _running(ws, nursery) as client:
            yield client
