"""The Trio shell around the hub core: listener, connections, timers and graceful shutdown."""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
import trio_websocket

from .. import __version__, protocol
from ..errors import ErrorContext, ErrorHandler, IdFactory, RequestContext, SessionError
from ..hub import Action, Close, Hub, HubConfig, Notice, Send, SessionGone, Warn
from ._connection import CLOSE_GOING_AWAY, Connection
from ._passwords import PasswordHasher
from ._settings import Settings

__all__ = ["CloseHook", "Handler", "Server"]

Handler = Callable[[Connection, protocol.Request, RequestContext], Awaitable[None]]
"""Handles one validated request of an extension type (see :meth:`Server.add_handler`)."""
CloseHook = Callable[[Connection], None]
"""Called once for every connection whose socket closed (after the hub was told)."""

log = logging.getLogger("voicebot.server")

WS_PATH = "/ws"


class Server:
    """A voicebot hub server.

    ``async with trio.open_nursery() as n: server = await n.start(Server(settings).run)`` serves TCP on
    ``settings.host:port``; :meth:`connect_stream` serves any Trio stream (tests use in-memory streams on the
    autojump clock). :meth:`shutdown` stops gracefully: no new connections, every client closed with 1001,
    done within ``shutdown_timeout``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        rng: random.Random | None = None,
        errors: ErrorHandler | None = None,
        passwords: PasswordHasher | None = None,
        listen: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        s = self.settings
        self.rng = rng if rng is not None else random.Random()
        self.errors = errors if errors is not None else ErrorHandler(ids=IdFactory(random.Random(self.rng.random())))
        self.hub = Hub(
            HubConfig(resume_grace=s.resume_grace, resume_buffer=s.resume_buffer,
                      heartbeat_interval=s.heartbeat_interval, max_lobbies=s.max_lobbies,
                      empty_lobby_ttl=s.empty_lobby_ttl, server=f"voicebot/{__version__}"),
            rng=random.Random(self.rng.random()),
        )
        self.passwords = passwords if passwords is not None else PasswordHasher()
        self.listen = listen
        self.close_timeout = min(2.0, s.shutdown_timeout / 4)
        self.connections: dict[int, Connection] = {}
        self.listeners: list[trio.SocketListener] = []
        self.notice_listeners: list[Callable[[Notice | SessionGone], None]] = []
        self.close_hooks: list[CloseHook] = []
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._stopping = trio.Event()
        self._timer_wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.stopped = trio.Event()
        """Set when :meth:`run` has finished."""

    # -- running ------------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`shutdown`; ``task_status.started(self)`` once listening."""
        try:
            await self._run(task_status)
        finally:
            self.stopped.set()

    async def _run(self, task_status: trio.TaskStatus[Server]) -> None:
        async with trio.open_nursery() as root:
            conns: trio.Nursery = await root.start(_hold_nursery)
            self._nursery = conns
            root.start_soon(self._expiry_loop)
            listen_scope = trio.CancelScope()
            if self.listen:
                self.listeners = await root.start(self._listen, listen_scope, conns)
                log.info("listening on %s", ", ".join(self.addresses()))
            task_status.started(self)
            await self._stopping.wait()
            listen_scope.cancel()
            for conn in list(self.connections.values()):
                conn.request_close(CLOSE_GOING_AWAY, "server shutting down")
            with trio.move_on_after(max(0.0, self.settings.shutdown_timeout - 2 * self.close_timeout)):
                await self._idle.wait()
            root.cancel_scope.cancel()
        log.debug("error statistics at shutdown: %s", self.errors.get_error_statistics())

    def shutdown(self) -> None:
        """Begin graceful shutdown (idempotent)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` was called."""
        return self._stopping.is_set()

    def addresses(self) -> list[str]:
        """``host:port`` of every listening socket."""
        out = []
        for listener in self.listeners:
            host, port = listener.socket.getsockname()[:2]
            out.append(f"{host}:{port}")
        return out

    @property
    def port(self) -> int:
        """The first listening port (useful with ``port=0``)."""
        return int(self.listeners[0].socket.getsockname()[1])

    async def _listen(
        self, scope: trio.CancelScope, conns: trio.Nursery,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            listeners = await trio.open_tcp_listeners(self.settings.port, host=self.settings.host)
            task_status.started(listeners)
            await trio.serve_listeners(self._serve_stream, listeners, handler_nursery=conns)

    async def _serve_stream(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            remote = f"{host}:{port}"
        except OSError:
            remote = "unknown"
        await self.handle_stream(stream, remote)

    def connect_stream(self, stream: trio.abc.Stream, remote: str = "memory") -> None:
        """Serve a client on ``stream`` (any Trio stream) inside the server's connection nursery."""
        if self._nursery is None:
            raise RuntimeError("server is not running")
        self._nursery.start_soon(self.handle_stream, stream, remote)

    async def handle_stream(self, stream: trio.abc.Stream, remote: str) -> None:
        """WebSocket handshake (bounded), then run the connection; nothing here can hurt other connections."""
        ctx = ErrorContext(self.errors.ids.new(), remote=remote, component="handshake")
        try:
            async with trio.open_nursery() as ws_nursery:  # owns trio-websocket's reader task
                ws = await self._handshake(ws_nursery, stream)
                if ws is not None:
                    conn = Connection(self, ws, next(self._ids), remote)
                    self.connections[conn.id] = conn
                    self._idle = trio.Event()
                    await conn.run()
                ws_nursery.cancel_scope.cancel()
        except BaseException as exc:
            self.errors.capture(exc, ctx)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _handshake(
        self, nursery: trio.Nursery, stream: trio.abc.Stream
    ) -> trio_websocket.WebSocketConnection | None:
        with trio.move_on_after(self.settings.hello_timeout):
            request = await trio_websocket.wrap_server_stream(
                nursery, stream, max_message_size=self.settings.max_message_size
            )
            if request.path.split("?", 1)[0] != WS_PATH:
                await request.reject(404, body=f"voicebot speaks WebSocket at {WS_PATH}\n".encode())
                return None
            return await request.accept()
        return None

    # -- dispatch -----------------------------------------------------------------------------------
    def add_handler(self, model: type[protocol.Request], handler: Handler, *, before_hello: bool = False) -> None:
        """Serve requests of ``model.TYPE`` with ``handler`` (features such as bots and admin plug in here).

        Unless ``before_hello``, the request is refused with ``hello_required`` before the client's hello.
        """
        protocol.register_request(model)
        self._handlers[model.TYPE] = (handler, before_hello)

    async def dispatch(self, conn: Connection, req: protocol.Request, rctx: RequestContext) -> None:
        """Run one validated request; domain errors propagate to the connection's error handling."""
        now = trio.current_time()
        extension = self._handlers.get(req.TYPE)
        if extension is not None:
            handler, before_hello = extension
            if not before_hello and self.hub.session_of(conn.id) is None:
                raise SessionError("send hello first", code="hello_required")
            await handler(conn, req, rctx)
            return
        if isinstance(req, protocol.Hello):
            actions = self.hub.hello(conn.id, req, now)
            conn.greeted.set()
        elif isinstance(req, protocol.LobbyCreate):
            digest = await self.passwords.hash(req.password) if req.password is not None else None
            actions = self.hub.create_lobby(conn.id, req, trio.current_time(), password_hash=digest)
        elif isinstance(req, protocol.LobbyJoin):
            lobby = self.hub.lobbies.get(req.lobby_id)
            ok: bool | None = None
            if lobby is not None and lobby.password_hash is not None and req.password is not None:
                ok = await self.passwords.verify(lobby.password_hash, req.password)
            actions = self.hub.join(conn.id, req, trio.current_time(), password_ok=ok)
        else:
            actions = self.hub.request(conn.id, req, now)
        self.apply(actions, rctx)

    def apply(self, actions: list[Action], rctx: RequestContext | None = None) -> None:
        """Carry out the hub's decisions: send (encoded once), close, warn, notify."""
        for action in actions:
            if isinstance(action, Send):
                text = protocol.encode(action.message)
                for cid in action.conns:
                    target = self.connections.get(cid)
                    if target is not None:
                        target.enqueue(text)
            elif isinstance(action, Close):
                target = self.connections.get(action.conn)
                if target is not None:
                    target.request_close(action.code, action.reason)
            elif isinstance(action, Warn):
                target = self.connections.get(action.conn)
                if target is not None:
                    ctx = rctx if rctx is not None and rctx.connection is target.ctx else target.ctx.request(None)
                    target.enqueue(protocol.encode(self.errors.handle(action.error, ctx).reply))
            else:
                for listener in self.notice_listeners:
                    listener(action)
        self._timer_wakeup.set()

    def state_message(self, conn_id: int) -> dict[str, Any]:
        """``lobby.state {lobby, peers}`` for the connection's session (``lobby: null`` outside lobbies)."""
        session = self.hub.session_of(conn_id)
        lobby = self.hub.lobbies.get(session.lobby_id) if session and session.lobby_id else None
        if session is None or lobby is None:
            return {"type": "lobby.state", "lobby": None, "peers": []}
        peers = [self.hub.sessions[p].peer_object() for p in lobby.members if p != session.peer_id]
        return {"type": "lobby.state", "lobby": lobby.public(), "peers": peers}

    def connection_closed(self, conn: Connection) -> None:
        """Called once per connection when its socket is closed: the session enters its resume grace."""
        self.connections.pop(conn.id, None)
        self.apply(self.hub.disconnect(conn.id, trio.current_time()))
        for hook in self.close_hooks:
            try:
                hook(conn)
            except Exception as exc:
                self.errors.handle(exc, attrs.evolve(conn.ctx, component="close_hook"))
        if not self.connections:
            self._idle.set()

    async def _expiry_loop(self) -> None:
        while True:
            deadline = self.hub.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else math.inf):
                await self._timer_wakeup.wait()
            self.apply(self.hub.expire(trio.current_time()))
            # Reset after applying: apply() sets the event, and the deadline is recomputed above anyway.
            self._timer_wakeup = trio.Event()


async def _hold_nursery(task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()
