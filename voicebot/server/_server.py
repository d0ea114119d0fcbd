"""The Trio shell around the hub core: listener, connections, timers and graceful shutdown."""

from __future__ import annotations

import functools
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio
import trio_websocket

from .. import __version__, faults, protocol
from ..auth import Passwords, resolve_admin_token
from ..errors import (
    ErrorHandler,
    IdFactory,
    RequestContext,
    SessionError,
)
from ..hub import (
    Action,
    Buffered,
    Close,
    Effect,
    Forward,
    Greeted,
    Hub,
    HubConfig,
    Notice,
    SaveSession,
    Send,
    SessionGone,
    Warn,
)
from ..metrics import HubCounters
from ..resilience import BreakerRegistry
from ._auth import Auth, client_host
from ._batching import BatchingStream
from ._connection import CLOSE_GOING_AWAY, Connection
from ._heartbeat import Heartbeats
from ._hosts import PasswordHashing
from ._http import HttpSurface
from ._journal import journal_breaker, journal_error, journal_notice
from ._persistence import Persistence
from ._proxies import ProxyPolicy
from ._quotas import Quotas, QuotaSettings
from ._requests import CoreRequests
from ._settings import Settings
from ._streams import WS_PATH, accept_stream, hold_nursery, listen, server_ssl_context

if TYPE_CHECKING:
    from ..cluster import Cluster

__all__ = ["WS_PATH", "CloseHook", "Handler", "PasswordHashing", "Server"]


RequestT = TypeVar("RequestT", bound=protocol.Request)
Handler = Callable[[Connection, RequestT, RequestContext], Awaitable[None]]
"""Handles one validated request of an extension type (see :meth:`Server.add_handler`)."""
CloseHook = Callable[[Connection], None]
"""Called once for every connection whose socket closed (after the hub was told)."""

log = logging.getLogger("voicebot.server")

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
                      ice_servers=tuple(s.ice_server_list()), shared_membership=bool(s.cluster),
                      announce_buffered=bool(s.cluster)),
            rng=random.Random(self.rng.random()) if seeded else None,
            registered_name=lambda name: self.persistence.name_record(name) is not None,
        )
        self.passwords: PasswordHashing = passwords if passwords is not None else Passwords(
            per_key_concurrent=s.password_checks_per_address, per_key_queue=s.password_queue_per_address)
        self.quotas = Quotas(QuotaSettings(
            max_connections_per_address=s.max_connections_per_address,
            connection_rate_per_address=s.connection_rate_per_address,
            connection_burst_per_address=s.connection_burst_per_address,
            max_lobbies_per_address=s.max_lobbies_per_address, max_lobbies_per_peer=s.max_lobbies_per_peer,
            request_rate_per_address=s.request_rate_per_address, request_burst_per_address=s.request_burst_per_address,
            outbox_bytes_per_address=s.outbox_bytes_per_address))
        self.proxies = ProxyPolicy(s.trusted_proxies)
        """Trusted reverse proxies (``--trusted-proxies``): whose forwarding headers name the client."""
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
        self.core = CoreRequests(self)
        """Carries out ``hello`` and the core requests (the hub decides, it performs the effects)."""
        self.cluster: Cluster | None = _join_cluster(self) if s.cluster else None
        """Cluster mode (``--cluster``): lobbies shared with other hubs through Redis (None: a single hub)."""
        self.counters = HubCounters(self.request_types)
        """Hot-path metric counters (exposed at ``/metrics`` by :attr:`http`)."""
        self.ssl_context = server_ssl_context(s.tls_cert, s.tls_key) if s.tls_cert else None
        self.http = HttpSurface(self, self.counters)
        """The HTTP surface beside ``/ws`` (page, health, readiness, metrics, origin policy)."""
        # Fault-run journal hooks (the last listeners): each is one context-variable lookup when no fault run is active.
        self.notice_listeners += [self.persistence.on_notice, self._quota_notice, journal_notice]
        self.errors.add_listener(journal_error)
        self.breakers.add_listener(journal_breaker)
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
            lobbies, sessions = await self.persistence.restore(self.hub, trio.current_time(),
                                                               sessions=self.cluster is None)
            if lobbies or sessions:
                log.info("restored %d persistent lobbies and %d resumable sessions", lobbies, sessions)
            await self._serve(task_status)

    async def _serve(self, task_status: trio.TaskStatus[Server]) -> None:
        async with trio.open_nursery() as root:
            root.start_soon(self.persistence.run_jobs)
            root.start_soon(functools.partial(self.persistence.janitor, interval=JANITOR_INTERVAL,
                                              audit_retention=self.settings.audit_retention_days * 86_400,
                                              hub=self.hub))
            conns: trio.Nursery = await root.start(hold_nursery)
            self._nursery = conns
            root.start_soon(self._expiry_loop)
            root.start_soon(self.heartbeats.run)
            if self.cluster is not None:
                await root.start(self.cluster.run)
            listen_scope = trio.CancelScope()
            if self.listen:
                self.listeners = await root.start(listen, self, listen_scope, conns)
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

    def connect_stream(self, stream: trio.abc.Stream, remote: str = "memory", *, trusted: bool = False) -> None:
        """Serve a client on ``stream`` (any Trio stream) inside the server's connection nursery.

        ``trusted`` connections (the in-process bot worker's) are not held to the per-address connection quotas:
        their number is bounded by the worker's capacity, and a client churning bots must not make the bots of
        everyone else fail on the worker's shared connection rate.
        """
        if self._nursery is None:
            raise RuntimeError("server is not running")
        self._nursery.start_soon(functools.partial(self.handle_stream, stream, remote, trusted=trusted))

    def handle_stream(self, stream: trio.abc.Stream, remote: str, *, trusted: bool = False) -> Awaitable[None]:
        """Admission, HTTP front and WebSocket handshake (bounded), then run the connection; nothing here can hurt
        other connections (``trusted``: see :meth:`connect_stream`).

        Returns the coroutine that does it (not a coroutine of its own: a connection's task holds one frame less)."""
        return accept_stream(self, stream, remote, trusted=trusted)

    def open_connection(self, ws: trio_websocket.WebSocketConnection, remote: str, batch: BatchingStream, *,
                        trusted: bool = False) -> Connection:
        """Register a connection for an accepted WebSocket (its caller runs it); ``batch``: the stream under
        ``ws`` (the writer batches frames through it, the heartbeat reads liveness from it)."""
        conn = Connection(self, ws, next(self._ids), remote, batch, trusted=trusted)
        self.connections[conn.id] = conn
        self._idle = trio.Event()
        return conn

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
        if faults.current_run() is not None:  # the point's keywords are built only when a plan may use them
            await faults.point("hub.dispatch", type=req.TYPE, conn=conn.id)
        extension = self._handlers.get(req.TYPE)
        if extension is None:
            await self.core.run(conn, req, rctx)
            return
        handler, before_hello, concurrent = extension
        if not before_hello and self.hub.session_of(conn.id) is None:
            raise SessionError("send hello first", code="hello_required")
        if concurrent:
            conn.run_concurrently(lambda: handler(conn, req, rctx), rctx)
        else:
            await handler(conn, req, rctx)

    def _quota_notice(self, action: Notice | SessionGone) -> None:
        if not isinstance(action, Notice):
            return
        lobby_id = str(action.fields.get("lobby_id"))
        if action.event == "lobby.deleted":
            self.quotas.lobby_deleted(lobby_id)
        elif action.event == "lobby.created":  # counted against its creator's address and peer
            session = self.hub.sessions.get(str(action.fields.get("peer_id")))
            creator = self.connections.get(session.conn) if session is not None and session.conn is not None else None
            if session is not None and creator is not None:
                self.quotas.lobby_created(lobby_id, client_host(creator.remote), session.peer_id)

    def statistics(self) -> dict[str, Any]:
        """Everything ``admin.stats`` shows: error statistics (with breakers and persistence) and counts."""
        return {
            **self.errors.get_error_statistics(),
            "connections": len(self.connections), "sessions": len(self.hub.sessions),
            "lobbies": len(self.hub.lobbies),
            **{name: source() for name, source in self.stats_sources.items()},
            "quotas": {"refused_connections": self.quotas.refused_connections,
                       "addresses_connected": len(self.quotas.connections),
                       "outbox_pauses": self.quotas.outboxes.pauses,
                       "spared_workers": self.quotas.spared_workers,
                       "forwarded_ignored": self.proxies.malformed},
        }

    def apply(self, actions: list[Action], rctx: RequestContext | None = None) -> None:
        """Carry out the hub's plain decisions: send (encoded once), close, warn, greet, notify. Effects (which
        wait for I/O and report back to the hub) are carried out by :attr:`core` only."""
        if self.cluster is not None:
            actions = self.cluster.forget_first(actions)
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
            elif isinstance(action, Buffered):
                if self.cluster is not None:
                    self.cluster.copies.buffered(action.peer_ids)
            elif isinstance(action, Warn):
                target = self.connections.get(action.conn)
                if target is not None:
                    ctx = rctx if rctx is not None and rctx.connection is target.ctx else target.ctx.request(None)
                    target.enqueue(protocol.encode(self.errors.handle(action.error, ctx).reply))
                    self.counters.count_sent("error")
            elif isinstance(action, Greeted):
                self._greeted(action, rctx)
            elif isinstance(action, SaveSession):  # outside a request: stored in the background, in order
                session = self.hub.sessions.get(action.peer_id)
                if session is not None:
                    self.persistence.session_changed(self.hub, session)
            elif isinstance(action, Effect):
                raise TypeError(f"{type(action).__name__} needs a request's carrier (CoreRequests.carry_out)")
            else:
                for listener in self.notice_listeners:
                    listener(action)
        deadline = self.hub.next_deadline()  # a heap peek: no wake-up (and no scan) per relayed message
        if deadline is not None and deadline < self._timer_at:
            self._timer_wakeup.set()

    def _greeted(self, action: Greeted, rctx: RequestContext | None) -> None:
        target = self.connections.get(action.conn)
        if target is not None:
            target.sync_context()
            target.greeted.set()
        self.persistence.audit("resume" if action.resumed else "connect", peer_id=action.peer_id, name=action.name,
                               remote=target.remote if target is not None else None,
                               correlation_id=rctx.correlation_id if rctx is not None else None, admin=action.admin,
                               kind=action.kind)

    def state_message(self, conn_id: int) -> dict[str, Any]:
        """``lobby.state {lobby, peers}`` for the connection's session, as the hub sees it."""
        return self.hub.lobby_state(conn_id)

    def connection_closed(self, conn: Connection) -> None:
        """Called once per connection when its socket is closed: the session enters its resume grace."""
        self.connections.pop(conn.id, None)
        session = self.hub.session_of(conn.id)
        self.apply(self.hub.disconnect(conn.id, trio.current_time()))
        if session is not None and session.conn is None:  # in its resume grace now
            self.persistence.session_changed(self.hub, session)
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


def _join_cluster(server: Server) -> Cluster:
    """The server's :class:`~voicebot.cluster.Cluster`, wired to its notices and ``admin.stats``; the cluster
    package (and its Redis client) loads only here, so a single hub never imports it."""
    from ..cluster import Cluster  # noqa: PLC0415

    s = server.settings
    cluster = Cluster(s.cluster, server.hub, server.apply, server.errors, server.breakers,
                      lobby_ttl=s.empty_lobby_ttl, on_name=server.persistence.learn_name)
    server.notice_listeners.append(cluster.on_notice)
    server.stats_sources["cluster"] = cluster.snapshot
    return cluster
