"""HTTP/1.1 on a Trio stream with h11 (parsing and framing by the library, never by hand).

:func:`serve_http` answers requests on one connection (keep-alive, bounded head size, a deadline for every
request head against slowloris) until the client asks for a WebSocket upgrade; then it returns a
:class:`ReplayStream` that yields the upgrade request's bytes again first, so trio-websocket performs the
handshake itself exactly as on a fresh socket.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import h11
import trio

from ._app import Request, Response, text_response

__all__ = ["MAX_REQUESTS_PER_CONNECTION", "ReplayStream", "Upgrade", "serve_http"]

log = logging.getLogger("voicebot.http")

#: Requests served on one keep-alive connection before it is closed (bounds one client's hold on a task).
MAX_REQUESTS_PER_CONNECTION = 100
#: Seconds one response may take to be written (a client that does not read is dropped).
SEND_TIMEOUT = 10.0
_RECEIVE_CHUNK = 16384


async def _replayed(chunk: bytes) -> bytes:
    await trio.lowlevel.checkpoint()
    return chunk


class ReplayStream(trio.abc.Stream):
    """``inner`` with ``prefix`` returned by the first receives: hands an already-read request to another parser."""

    __slots__ = ("_prefix", "inner")  # one per WebSocket connection: no instance dict

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    def receive_some(self, max_bytes: int | None = None) -> Coroutine[Any, Any, bytes | bytearray]:
        """The replayed bytes first, then the inner stream's (its own coroutine, handed over: a connection waiting
        for bytes holds no frame of this layer)."""
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            chunk, self._prefix = self._prefix[:n], self._prefix[n:]
            return _replayed(chunk)
        return self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send on the inner stream."""
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the inner stream."""
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the inner stream."""
        await self.inner.aclose()


class Upgrade:
    """A WebSocket upgrade request: the parsed head and a stream that replays it."""

    def __init__(self, request: Request, stream: ReplayStream) -> None:
        self.request = request
        self.stream = stream


Responder = Callable[[Request], Awaitable[Response]]
"""Answers one (non-upgrade) request."""
UpgradeCheck = Callable[[Request], Awaitable[Response | None]]
"""Decides a WebSocket upgrade request: None hands it to the WebSocket side, a response refuses it."""


def _head_of(event: h11.Request, remote: str) -> Request:
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(event.method.decode("ascii", "replace"), event.target.decode("latin-1"), headers, remote)


def _is_upgrade(request: Request) -> bool:
    connection = {token.strip().lower() for token in request.header("connection").split(",")}
    return "upgrade" in connection and request.header("upgrade").lower() == "websocket"


def _replay_bytes(event: h11.Request, trailing: bytes) -> bytes:
    """The upgrade request serialised again (by h11's client side) followed by whatever came after it."""
    client = h11.Connection(h11.CLIENT)
    head = client.send(h11.Request(method=event.method, target=event.target,
                                   headers=list(event.headers.raw_items())))
    return (head or b"") + trailing


async def _send(stream: trio.abc.Stream, conn: h11.Connection, response: Response, *, head_only: bool,
                close: bool) -> None:
    headers = [*response.headers, ("content-length", str(len(response.body))),
               ("date", email.utils.formatdate(usegmt=True))]
    if close:
        headers.append(("connection", "close"))
    import http  # noqa: PLC0415 (HTTPStatus, an enum of every status: loaded with the first response)

    try:
        reason = http.HTTPStatus(response.status).phrase.encode()
    except ValueError:
        reason = b""
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason)) or b""
    if not head_only and response.body:
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    with trio.move_on_after(SEND_TIMEOUT):
        await stream.send_all(data)


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> h11.Event | type[h11.PAUSED]:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]
        conn.receive_data(bytes(await stream.receive_some(_RECEIVE_CHUNK)))


async def serve_http(
    stream: trio.abc.Stream, respond: Responder, *, remote: str = "unknown", head_timeout: float,
    max_head: int, upgrade: UpgradeCheck | None = None,
) -> Upgrade | None:
    """Serve HTTP requests on ``stream``; return an :class:`Upgrade` when one asks for a WebSocket (and
    ``upgrade`` accepts it), None when the connection is done (the caller closes ``stream``).

    Each request head must arrive within ``head_timeout`` seconds and fit in ``max_head`` bytes (431 beyond);
    a malformed one gets 400. Requests with a body are answered and the connection closed (no route reads one).
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
    for served in range(MAX_REQUESTS_PER_CONNECTION):
        try:
            with trio.move_on_after(head_timeout) as scope:
                event = await _next_event(stream, conn)
            if scope.cancelled_caught:  # slowloris, or an idle keep-alive connection: closed without a reply
                log.debug("http %s: no request head within %g s", remote, head_timeout)
                return None
            if not isinstance(event, h11.Request):
                return None  # ConnectionClosed (or a stray event): the client is done
            if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > max_head:
                # h11 bounds only a head still incomplete; one that arrived whole in a chunk is measured here
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            request = _head_of(event, remote)
            end = conn.next_event()  # EndOfMessage at once for bodiless requests, NEED_DATA when a body follows
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in (400, 431) else 400
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                reason = "request head too large" if status == 431 else "malformed HTTP request"
                await _send(stream, conn, text_response(status, f"{reason}\n"), head_only=False, close=True)
            return None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        bodiless = isinstance(end, h11.EndOfMessage)
        if _is_upgrade(request) and upgrade is not None and request.method == "GET" and bodiless:
            refusal = await upgrade(request)
            if refusal is None:
                trailing, _closed = conn.trailing_data
                return Upgrade(request, ReplayStream(stream, _replay_bytes(event, bytes(trailing))))
            await _send(stream, conn, refusal, head_only=False, close=True)
            return None
        response = await respond(request)
        last = not bodiless or served == MAX_REQUESTS_PER_CONNECTION - 1 or conn.our_state is not h11.SEND_RESPONSE
        try:
            await _send(stream, conn, response, head_only=request.method == "HEAD", close=last)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            return None
        if last or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return None
        conn.start_next_cycle()
    return None
