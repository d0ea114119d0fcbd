"""The Trio shell around the hub core: listener, connections, timers and graceful shutdown."""

from __future__ import annotations

import functools
import itertools
import logging
import math
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import trio
import trio_websocket

from .. import __version__, faults, protocol
from ..auth import Passwords, address_key, resolve_admin_token
from ..errors import (
    AuthError,
    ErrorContext,
    ErrorHandler,
    ErrorRecord,
    IdFactory,
    RequestContext,
    SessionError,
    VoiceBotError,
)
from ..hub import Action, Close, Forward, Hub, HubConfig, Lobby, Notice, Send, SessionGone, Warn
from ..metrics import HubCounters
from ..resilience import BreakerRegistry
from ._auth import Auth, client_host
from ._batching import BatchingStream
from ._connection import CLOSE_GOING_AWAY, Connection
from ._heartbeat import Heartbeats
from ._http import HttpSurface
from ._persistence import Persistence
from ._quotas import Quotas, QuotaSettings, refuse_stream
from ._settings import Settings

if TYPE_CHECKING:
    from ..cluster import Cluster

__all__ = ["CloseHook", "Handler", "PasswordHashing", "Server"]


class PasswordHashing(Protocol):
    """What the server needs from a password hasher (:class:`voicebot.auth.Passwords` in production)."""

    async def hash(self, password: str, *, key: str | None = None) -> str:
        """Hash ``password`` (slow by design; off the event loop); ``key`` names the caller (its address key)
        for a per-caller budget."""
        ...

    async def verify(self, password_hash: str, password: str, *, key: str | None = None) -> bool:
        """True when ``password`` matches ``password_hash`` (``key`` as in :meth:`hash`)."""
        ...

RequestT = TypeVar("RequestT", bound=protocol.Request)
Handler = Callable[[Connection, RequestT, RequestContext], Awaitable[None]]
"""Handles one validated request of an extension type (see :meth:`Server.add_handler`)."""
CloseHook = Callable[[Connection], None]
"""Called once for every connection whose socket closed (after the hub was told)."""

log = logging.getLogger("voicebot.server")

WS_PATH = "/ws"
#: Seconds between janitor passes (expired sessions, old audit rows).
JANITOR_INTERVAL = 3600.0


class Server:
    """A voicebot hub server.

    ``async with trio.open_nursery() as n: server = await n.start(Server(settings).run)`` serves TCP on
    ``settings.host:port``; :meth:`connect_stream` serves any Trio stream (tests use in-memory streams on the
    autojump clock). :meth:`shutdown` stops gracefully: no new connections, every client closed with 1001,
    done within ``shutdown_timeout``.
    """

    _timer_at: float = math.inf
    """When the expiry loop wakes next; :meth:`apply` wakes it earlier only if the earliest deadline moved."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        rng: random.Random | None = None,
        errors: ErrorHandler | None = None,
        passwords: PasswordHashing | None = None,
        listen: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        s = self.settings
        # A seeded rng (tests, chaos replays) makes ids deterministic; without one every id a client sees
        # (peer, lobby, worker, job, correlation) comes from ``secrets`` and cannot be predicted from others.
        seeded = rng is not None
        self.rng = rng if rng is not None else random.Random()
        self.errors = errors if errors is not None else ErrorHandler(
            ids=IdFactory(random.Random(self.rng.random()) if seeded else None))
        self.hub = Hub(
            HubConfig(resume_grace=s.resume_grace, resume_buffer=s.resume_buffer,
                      resume_buffer_bytes=s.resume_buffer_bytes,
                      heartbeat_interval=s.heartbeat_interval, max_lobbies=s.max_lobbies,
                      empty_lobby_ttl=s.empty_lobby_ttl, server=f"voicebot/{__version__}",
                      ice_servers=tuple(s.ice_server_list())),
            rng=random.Random(self.rng.random()) if seeded else None,
        )
        self.passwords: PasswordHashing = passwords if passwords is not None else Passwords(
            per_key_concurrent=s.password_checks_per_address, per_key_queue=s.password_queue_per_address)
        self.quotas = Quotas(QuotaSettings(
            max_connections_per_address=s.max_connections_per_address,
            connection_rate_per_address=s.connection_rate_per_address,
            connection_burst_per_address=s.connection_burst_per_address,
            max_lobbies_per_address=s.max_lobbies_per_address, max_lobbies_per_peer=s.max_lobbies_per_peer,
            request_rate_per_address=s.request_rate_per_address, request_burst_per_address=s.request_burst_per_address))
        self.breakers = BreakerRegistry()
        self.errors.add_source("breakers", self.breakers.snapshot)
        self.persistence = Persistence(s.db, self.errors, self.breakers, random.Random(self.rng.random()),
                                       resume_grace=s.resume_grace)
        self.errors.add_source("persistence", self.persistence.snapshot)
        self.persistence.security_wait = s.audit_wait
        self.admin_token, self.admin_token_generated = resolve_admin_token(s.admin_token or None)
        self.listen = listen
        self.close_timeout = min(2.0, s.shutdown_timeout / 4)
        self.connections: dict[int, Connection] = {}
        self.listeners: list[trio.SocketListener] = []
        self.notice_listeners: list[Callable[[Notice | SessionGone], None]] = []
        self.stats_sources: dict[str, Callable[[], Any]] = {}
        """Extra sections of ``admin.stats`` by name (e.g. ``assistants`` from the in-process worker)."""
        self.close_hooks: list[CloseHook] = []
        self._handlers: dict[str, tuple[Handler[Any], bool, bool]] = {}
        self.request_types: dict[str, type[protocol.Request]] = dict(protocol.REQUEST_TYPES)
        """What this server decodes: the core types plus those its extensions added (:meth:`add_handler`)."""
        self.auth = Auth(self, self.admin_token)
        self.cluster: Cluster | None = _join_cluster(self) if s.cluster else None
        """Cluster mode (``--cluster``): lobbies shared with other hubs through Redis (None: a single hub)."""
        self.counters = HubCounters(self.request_types)
        """Hot-path metric counters (exposed at ``/metrics`` by :attr:`http`)."""
        self.ssl_context = _server_ssl_context(s.tls_cert, s.tls_key) if s.tls_cert else None
        self.http = HttpSurface(self, self.counters)
        """The HTTP surface beside ``/ws`` (page, health, readiness, metrics, origin policy)."""
        self.notice_listeners.append(self.persistence.on_notice)
        self.notice_listeners.append(self._quota_notice)
        # Fault-run journal hooks: each is one context-variable lookup when no fault run is active.
        self.errors.add_listener(_journal_error)
        self.notice_listeners.append(_journal_notice)
        self.breakers.add_listener(_journal_breaker)
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._stopping = trio.Event()
        self._timer_wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.stopped = trio.Event()
        """Set when :meth:`run` has finished."""

    @functools.cached_property
    def heartbeats(self) -> Heartbeats:
        """Every connection's ping schedule: one timer task (started by :meth:`run`), not one per connection."""
        return Heartbeats(self.settings.heartbeat_interval)

    # -- running ------------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`shutdown`; ``task_status.started(self)`` once listening."""
        try:
            await self._run(task_status)
        finally:
            self.stopped.set()

    async def _run(self, task_status: trio.TaskStatus[Server]) -> None:
        async with self.persistence.open():
            await self.persistence.load_names()
            lobbies, sessions = await self.persistence.restore(self.hub, trio.current_time())
            if lobbies or sessions:
                log.info("restored %d persistent lobbies and %d resumable sessions", lobbies, sessions)
            await self._serve(task_status)

    async def _serve(self, task_status: trio.TaskStatus[Server]) -> None:
        async with trio.open_nursery() as root:
            root.start_soon(self.persistence.run_jobs)
            root.start_soon(functools.partial(self.persistence.janitor, interval=JANITOR_INTERVAL,
                                              audit_retention=self.settings.audit_retention_days * 86_400))
            conns: trio.Nursery = await root.start(_hold_nursery)
            self._nursery = conns
            root.start_soon(self._expiry_loop)
            root.start_soon(self.heartbeats.run)
            if self.cluster is not None:
                await root.start(self.cluster.run)
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
            await self.persistence.drain(self.close_timeout / 2)
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
            remote = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        except OSError:
            remote = "unknown"
        if self.ssl_context is not None:  # the TLS handshake runs inside the request-head deadline
            await self.handle_stream(trio.SSLStream(stream, self.ssl_context, server_side=True,
                                                    https_compatible=True), remote)
            return
        await self.handle_stream(stream, remote)

    def connect_stream(self, stream: trio.abc.Stream, remote: str = "memory") -> None:
        """Serve a client on ``stream`` (any Trio stream) inside the server's connection nursery."""
        if self._nursery is None:
            raise RuntimeError("server is not running")
        self._nursery.start_soon(self.handle_stream, stream, remote)

    async def handle_stream(self, stream: trio.abc.Stream, remote: str) -> None:
        """WebSocket handshake (bounded), then run the connection; nothing here can hurt other connections."""
        ctx = ErrorContext(self.errors.ids.new(), remote=remote, component="handshake")
        host = client_host(remote)
        refusal = self.quotas.admit(host, trio.current_time())
        if refusal is not None:  # per-address quota: HTTP 429 (bounded), audited, not counted as a connection
            self.persistence.audit("connection_refused", remote=remote, code=refusal.code)
            await refuse_stream(stream, refusal, min(2.0, self.settings.hello_timeout))
            return
        try:
            async with trio.open_nursery() as ws_nursery:  # owns trio-websocket's reader task
                upgrade = await self.http.front(stream, remote)  # plain HTTP is answered here (voicebot.http)
                batch = BatchingStream(upgrade[0]) if upgrade is not None else None
                ws = await self._handshake(ws_nursery, batch) if batch is not None else None
                if ws is not None:
                    conn = Connection(self, ws, next(self._ids), remote, batch)
                    self.connections[conn.id] = conn
                    self._idle = trio.Event()
                    await conn.run()
                ws_nursery.cancel_scope.cancel()
        except BaseException as exc:
            self.errors.capture(exc, ctx)
        finally:
            self.quotas.release(host)
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
    def add_handler(
        self, model: type[RequestT], handler: Handler[RequestT], *, before_hello: bool = False,
        concurrent: bool = False,
    ) -> None:
        """Serve requests of ``model.TYPE`` with ``handler`` (features such as bots and admin plug in here).

        Unless ``before_hello``, the request is refused with ``hello_required`` before the client's hello. A
        ``concurrent`` handler (one that waits on something slow) runs beside the connection's reader.
        """
        if not model.TYPE:
            raise ValueError("request model needs a TYPE")
        self.request_types[model.TYPE] = model  # this server's registry only
        self._handlers[model.TYPE] = (handler, before_hello, concurrent)

    async def dispatch(self, conn: Connection, req: protocol.Request, rctx: RequestContext) -> None:
        """Run one validated request; domain errors propagate to the connection's error handling."""
        await faults.point("hub.dispatch", type=req.TYPE, conn=conn.id)
        now = trio.current_time()
        extension = self._handlers.get(req.TYPE)
        if extension is not None:
            handler, before_hello, concurrent = extension
            if not before_hello and self.hub.session_of(conn.id) is None:
                raise SessionError("send hello first", code="hello_required")
            if concurrent:
                conn.run_concurrently(lambda: handler(conn, req, rctx), rctx)
            else:
                await handler(conn, req, rctx)
            return
        if isinstance(req, protocol.Hello):
            await self._hello(conn, req, rctx)
            return
        if isinstance(req, protocol.LobbyCreate):
            session = self.hub.session_of(conn.id)
            if session is None:
                raise SessionError("send hello first", code="hello_required")
            if req.persistent and not (session.admin or self.persistence.name_record(session.name) is not None):
                raise AuthError("persistent lobbies need admin rights or a registered name", code="forbidden",
                                field="persistent")
            if not session.admin:  # admins are not held to lobby quotas
                self.quotas.check_lobby(client_host(conn.remote), session.peer_id)
            digest = (await self.passwords.hash(req.password, key=address_key(client_host(conn.remote)))
                      if req.password is not None else None)
            if not session.admin:  # again: hashing took time
                self.quotas.check_lobby(client_host(conn.remote), session.peer_id)
            new = self.hub.prepare_lobby(conn.id, req, trio.current_time(), password_hash=digest)
            if new.persistent:  # committed before lobby.created is sent
                await self.persistence.require().create_lobby(
                    new.id, new.name, max_members=new.max_members, private=new.private,
                    password_hash=new.password_hash, persistent=True)
            actions = self.hub.create_lobby(conn.id, req, trio.current_time(), password_hash=digest, lobby=new)
            self.quotas.lobby_created(new.id, client_host(conn.remote), session.peer_id)
        elif self.cluster is not None and isinstance(req, protocol.LobbyJoin | protocol.LobbyList):
            actions = await self._cluster_request(conn, req, rctx)
        elif isinstance(req, protocol.LobbyJoin):
            lobby = self.hub.lobbies.get(req.lobby_id)
            ok: bool | None = None
            if req.ticket is not None:
                ok = self.hub.ticket_admits(req.ticket, req.lobby_id, now)
            elif lobby is not None and lobby.password_hash is not None and req.password is not None:
                member = (session := self.hub.session_of(conn.id)) is not None and session.lobby_id == lobby.id
                ok = True if member else await self.auth.check_lobby_password(conn, lobby, req.password, rctx)
            actions = self.hub.join(conn.id, req, trio.current_time(), password_ok=ok)
        else:
            self._cluster_check(req)
            actions = self.hub.request(conn.id, req, now)
        before = self._persistent_lobby_of(conn)
        partly = await self._apply_request(actions, rctx)
        if before or self._persistent_lobby_of(conn):  # membership of a persistent lobby survives restarts
            await self.save_session(conn)
        if partly is not None:  # after the save: the request itself went through
            raise partly

    def _cluster_check(self, req: protocol.Request) -> None:
        """Cluster mode: refuse what needs another hub while Redis is unreachable (a ``signal`` to its peer)."""
        if self.cluster is not None:
            self.cluster.check_request(req)

    async def _apply_request(self, actions: list[Action], rctx: RequestContext) -> VoiceBotError | None:
        """:meth:`apply` a request's actions; in cluster mode a new lobby is registered in Redis first, and the
        ``cluster_unavailable`` error is returned when a message could not reach peers on other hubs."""
        if self.cluster is None:
            self.apply(actions, rctx)
            return None
        await self.cluster.register_created(actions)  # before lobby.created is sent
        dropped = self.cluster.dropped
        self.apply(actions, rctx)
        if self.cluster.dropped > dropped:
            from ..cluster import cluster_unavailable  # noqa: PLC0415 - loaded with cluster mode only

            return cluster_unavailable("delivered to peers on this hub only")
        return None

    async def _cluster_request(
        self, conn: Connection, req: protocol.LobbyJoin | protocol.LobbyList, rctx: RequestContext
    ) -> list[Action]:
        """``lobby.join`` (cap checked cluster-wide) and ``lobby.list`` (cluster-wide) in cluster mode."""
        assert self.cluster is not None
        if isinstance(req, protocol.LobbyJoin):
            return await self.cluster.join(conn.id, req, functools.partial(self._password_ok, conn, req, rctx))
        lobbies, next_cursor, partial = await self.cluster.lobby_list(req.cursor, req.limit)
        reply: dict[str, Any] = {"type": "lobby.list", "lobbies": lobbies, "next_cursor": next_cursor}
        if partial:
            reply["partial"] = True  # Redis unreachable: this hub's lobbies only
        if req.id is not None:
            reply["reply_to"] = req.id
        return [Send((conn.id,), reply)]

    async def _password_ok(
        self, conn: Connection, req: protocol.LobbyJoin, rctx: RequestContext, lobby: Lobby | None
    ) -> bool | None:
        """``lobby.join``'s ticket or password check, as in single-hub mode (None: not checked)."""
        if req.ticket is not None:
            return self.hub.ticket_admits(req.ticket, req.lobby_id, trio.current_time())
        if lobby is not None and lobby.password_hash is not None and req.password is not None:
            session = self.hub.session_of(conn.id)
            if session is not None and session.lobby_id == lobby.id:
                return True
            return await self.auth.check_lobby_password(conn, lobby, req.password, rctx)
        return None

    async def _hello(self, conn: Connection, req: protocol.Hello, rctx: RequestContext) -> None:
        self.hub.check_new_connection(conn.id)  # already_hello before any (slow) authentication
        admin = await self.auth.check_hello(conn, req, rctx)
        actions = self.hub.hello(conn.id, req, trio.current_time(), admin=admin)
        session = self.hub.session_of(conn.id)
        conn.sync_context()
        await self.save_session(conn)  # the new resume token survives a restart before welcome is sent
        conn.greeted.set()
        self.apply(actions, rctx)
        if session is not None:
            resumed = any(isinstance(a, Notice) and a.event == "session.resumed" for a in actions)
            self.persistence.audit("resume" if resumed else "connect", peer_id=session.peer_id, name=session.name,
                                   remote=conn.remote, correlation_id=rctx.correlation_id, admin=admin,
                                   kind=session.kind)

    def _quota_notice(self, action: Notice | SessionGone) -> None:
        if isinstance(action, Notice) and action.event == "lobby.deleted":
            self.quotas.lobby_deleted(str(action.fields.get("lobby_id")))

    def _persistent_lobby_of(self, conn: Connection) -> bool:
        session = self.hub.session_of(conn.id)
        lobby = self.hub.lobbies.get(session.lobby_id) if session and session.lobby_id else None
        return lobby is not None and lobby.persistent

    async def save_session(self, conn: Connection) -> None:
        """Store the connection's session (best effort: a failure is counted and the request goes on)."""
        session = self.hub.session_of(conn.id)
        if session is not None:
            await self.persistence.save_session(self.hub, session, attrs.evolve(conn.ctx, component="persistence"))

    def statistics(self) -> dict[str, Any]:
        """Everything ``admin.stats`` shows: error statistics (with breakers and persistence) and counts."""
        return {
            **self.errors.get_error_statistics(),
            "connections": len(self.connections), "sessions": len(self.hub.sessions),
            "lobbies": len(self.hub.lobbies),
            **{name: source() for name, source in self.stats_sources.items()},
            "quotas": {"refused_connections": self.quotas.refused_connections,
                       "addresses_connected": len(self.quotas.connections)},
        }

    def apply(self, actions: list[Action], rctx: RequestContext | None = None) -> None:
        """Carry out the hub's decisions: send (encoded once), close, warn, notify."""
        for action in actions:
            if isinstance(action, Send):
                text = protocol.encode(action.message)
                sent = 0
                for cid in action.conns:
                    target = self.connections.get(cid)
                    if target is not None:
                        target.enqueue(text)
                        sent += 1
                self.counters.count_sent(action.message.get("type"), sent)
            elif isinstance(action, Close):
                target = self.connections.get(action.conn)
                if target is not None:
                    target.request_close(action.code, action.reason)
            elif isinstance(action, Forward):
                if self.cluster is not None:
                    self.cluster.forward(action)
            elif isinstance(action, Warn):
                target = self.connections.get(action.conn)
                if target is not None:
                    ctx = rctx if rctx is not None and rctx.connection is target.ctx else target.ctx.request(None)
                    target.enqueue(protocol.encode(self.errors.handle(action.error, ctx).reply))
                    self.counters.count_sent("error")
            else:
                for listener in self.notice_listeners:
                    listener(action)
        deadline = self.hub.next_deadline()  # a heap peek: no wake-up (and no scan) per relayed message
        if deadline is not None and deadline < self._timer_at:
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
        session = self.hub.session_of(conn.id)
        self.apply(self.hub.disconnect(conn.id, trio.current_time()))
        if session is not None and session.conn is None:  # in its resume grace now
            self.persistence.session_disconnected(self.hub, session)
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
            self._timer_at = deadline if deadline is not None else math.inf
            with trio.move_on_at(self._timer_at):
                await self._timer_wakeup.wait()
            self.apply(self.hub.expire(trio.current_time()))
            # Reset after applying: apply() sets the event, and the deadline is recomputed above anyway.
            self._timer_wakeup = trio.Event()


def _journal_error(record: ErrorRecord, error: VoiceBotError) -> None:
    faults.record("error", code=record.code, category=record.category, severity=record.severity,
                  component=record.component, cid=record.correlation_id, type=record.message_type)


def _journal_breaker(event: Any) -> None:  # a resilience.BreakerEvent
    if event.to_state is not None:  # state transitions only
        faults.record("breaker", breaker=event.breaker, from_state=event.from_state, to_state=event.to_state)


def _journal_notice(action: Notice | SessionGone) -> None:
    if isinstance(action, Notice):
        faults.record("session", event=action.event, fields=action.fields)
    else:
        faults.record("session", event="session.gone", peer_id=action.peer_id, reason=action.reason)


def _join_cluster(server: Server) -> Cluster:
    """The server's :class:`~voicebot.cluster.Cluster`, wired to its notices and ``admin.stats``; the cluster
    package (and its Redis client) loads only here, so a single hub never imports it."""
    from ..cluster import Cluster  # noqa: PLC0415

    s = server.settings
    cluster = Cluster(s.cluster, server.hub, server.apply, server.errors, server.breakers,
                      lobby_ttl=s.empty_lobby_ttl)
    server.notice_listeners.append(cluster.on_notice)
    server.stats_sources["cluster"] = cluster.snapshot
    return cluster


def _server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS for the listener: the default server context (TLS 1.2+, no compression), cert chain from PEM."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def _hold_nursery(task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()
