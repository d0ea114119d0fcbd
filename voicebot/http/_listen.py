"""A standalone HTTP listener for an :class:`HttpApp` (``voicebot worker --metrics-port``)."""

from __future__ import annotations

import functools

import trio

from ._app import HttpApp
from ._wire import serve_http

__all__ = ["serve_app"]


async def _one(app: HttpApp, head_timeout: float, max_head: int, stream: trio.SocketStream) -> None:
    try:
        host, port = stream.socket.getpeername()[:2]
        remote = f"{host}:{port}"
    except OSError:
        remote = "unknown"
    try:
        await serve_http(stream, app.respond, remote=remote, head_timeout=head_timeout, max_head=max_head)
    finally:
        await trio.aclose_forcefully(stream)


async def serve_app(app: HttpApp, port: int, host: str = "127.0.0.1", *, head_timeout: float = 10.0,
                    max_head: int = 16384,
                    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``host:port`` until cancelled (no WebSocket: an upgrade is answered by the routes);
    ``task_status.started(listeners)`` once listening (port 0 picks a free one)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners)
    await trio.serve_listeners(functools.partial(_one, app, head_timeout, max_head), listeners)
