"""Accepting clients: TCP listeners, TLS, per-address admission, the HTTP front and the WebSocket handshake.

Every step before a :class:`~voicebot.server.Connection` runs is bounded (``hello_timeout``) and owned by the
server's connection nursery; nothing that happens to one stream can hurt the others.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import trio
import trio_websocket

from ..errors import ErrorContext
from ._auth import client_host
from ._batching import BatchingStream
from ._linger import LINGER_CODES, DeferredCloseStream, linger
from ._quotas import refuse_stream

if TYPE_CHECKING:
    from ._connection import Connection
    from ._server import Server

__all__ = ["WS_PATH", "accept_stream", "hold_nursery", "listen", "server_ssl_context"]

WS_PATH = "/ws"
#: Bytes a lingering close reads away at least before it gives up (twice ``max_message_size`` if larger).
LINGER_MAX_BYTES = 1 << 20


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS for the listener: the default server context (TLS 1.2+, no compression), cert chain from PEM."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def hold_nursery(task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED) -> None:
    """A nursery that lives until cancelled (the owner of every connection's task)."""
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


async def listen(
    server: Server, scope: trio.CancelScope, conns: trio.Nursery,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``settings.host:port`` until ``scope`` is cancelled; each client is served in ``conns``."""

    def serve(stream: trio.SocketStream) -> Awaitable[None]:
        # Not a coroutine of its own: it hands over handle_stream's, so every connection's task holds one frame
        # less for its whole life.
        try:
            host, port = stream.socket.getpeername()[:2]
            remote = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        except OSError:
            remote = "unknown"
        if server.ssl_context is not None:  # the TLS handshake runs inside the request-head deadline
            return server.handle_stream(trio.SSLStream(stream, server.ssl_context, server_side=True,
                                                       https_compatible=True), remote)
        return server.handle_stream(stream, remote)

    with scope:
        listeners = await trio.open_tcp_listeners(server.settings.port, host=server.settings.host)
        task_status.started(listeners)
        await trio.serve_listeners(serve, listeners, handler_nursery=conns)


async def accept_stream(server: Server, stream: trio.abc.Stream, remote: str, *, trusted: bool = False) -> None:
    """Admission (per-address quota, skipped for ``trusted`` in-process streams), HTTP front, WebSocket handshake
    (bounded), then run the connection; after a protocol-error close (1002/1007/1009) the stream lingers (reads
    and discards, bounded) so the close frame is not lost to a TCP reset.

    A stream from a trusted proxy (``--trusted-proxies``) is admitted once its request head names the client: the
    quotas, throttles, audit rows and logs of the connection are the client's, not the proxy's."""
    ctx = ErrorContext(server.errors.ids.new(), remote=remote, component="handshake")
    host = client_host(remote)
    proxied = not trusted and server.proxies.trusts(host)
    admitted: str | None = None
    if not trusted and not proxied:
        if not await _admit(server, stream, host, remote):
            return
        admitted = host
    ws: trio_websocket.WebSocketConnection | None = None
    conn: Connection | None = None
    try:
        async with trio.open_nursery() as ws_nursery:  # owns trio-websocket's reader task
            upgrade = await server.http.front(stream, remote)  # plain HTTP is answered here (voicebot.http)
            if upgrade is not None and proxied:
                remote = upgrade[2]
                if not await _admit(server, upgrade[0], client_host(remote), remote):
                    return
                admitted = client_host(remote)
            if upgrade is not None:  # trio-websocket's own close of the stream is deferred to the finally below;
                # its writes may be batched (held while more messages are queued, see _batching)
                batch = BatchingStream(DeferredCloseStream(upgrade[0]), socket_fd(stream))
                ws = await _handshake(server, ws_nursery, batch)
                if ws is not None:
                    conn = server.open_connection(ws, remote, batch, trusted=trusted)
                    await conn.run()
            ws_nursery.cancel_scope.cancel()
    except BaseException as exc:
        server.errors.capture(exc, ctx)
    finally:
        if admitted is not None and (conn is None or conn.quota_slot):  # a proven worker gave its slot back already
            server.quotas.release(admitted)
        with trio.CancelScope(shield=True):
            if ws is not None and ws.closed is not None and ws.closed.code in LINGER_CODES:
                # The client may still be sending what made us close: read it away first.
                await linger(stream, timeout=server.close_timeout,
                             max_bytes=max(LINGER_MAX_BYTES, 2 * server.settings.max_message_size))
            await trio.aclose_forcefully(stream)


def socket_fd(stream: trio.abc.Stream) -> int | None:
    """The file descriptor of a plain TCP stream (whose bytes reach the socket unchanged); None for TLS or
    in-memory streams."""
    return stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None


async def _admit(server: Server, stream: trio.abc.Stream, host: str, remote: str) -> bool:
    """Count a connection from ``host`` against its quotas, or answer HTTP 429 (bounded), audit the refusal and
    return False (a refused connection is not counted)."""
    refusal = server.quotas.admit(host, trio.current_time())
    if refusal is None:
        return True
    server.persistence.audit("connection_refused", remote=remote, code=refusal.code)
    await refuse_stream(stream, refusal, min(2.0, server.settings.hello_timeout))
    return False


async def _handshake(
    server: Server, nursery: trio.Nursery, stream: trio.abc.Stream
) -> trio_websocket.WebSocketConnection | None:
    with trio.move_on_after(server.settings.hello_timeout):
        request = await trio_websocket.wrap_server_stream(
            nursery, stream, max_message_size=server.settings.max_message_size
        )
        if request.path.split("?", 1)[0] != WS_PATH:
            await request.reject(404, body=f"voicebot speaks WebSocket at {WS_PATH}\n".encode())
            return None
        return await request.accept()
    return None
