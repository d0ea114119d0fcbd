"""The server's HTTP surface beside ``/ws``: web client, health, readiness, metrics, origin policy, 426.

:meth:`HttpSurface.front` runs first on every accepted stream (TCP, TLS or in-memory): plain HTTP is answered
here (see :mod:`voicebot.http`), and a WebSocket upgrade on ``/ws`` that passes the origin policy comes back as a
stream replaying the request, which the server hands to trio-websocket as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import trio

from .. import __version__, metrics
from ..errors import ErrorContext, ErrorRecord, VoiceBotError
from ..http import (
    HttpApp,
    OriginPolicy,
    Request,
    Response,
    StaticFiles,
    json_response,
    serve_http,
    text_response,
    web_root,
)
from ..metrics import HubCounters, HubState
from ._auth import client_host

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._connection import Connection
    from ._server import Server

__all__ = ["HttpSurface"]

log = logging.getLogger("voicebot.http")

_OPEN_STATES = ("open", "forced_open")


class HttpSurface:
    """Routes, metrics registry and WebSocket front door of one :class:`~voicebot.server.Server`."""

    def __init__(self, server: Server, counters: HubCounters) -> None:
        self.server = server
        self.counters = counters
        settings = server.settings
        self.origins = OriginPolicy(settings.allowed_origins)
        self.tls = bool(settings.tls_cert)
        self.static = StaticFiles(web_root())
        self.worker_count: Callable[[], int] = lambda: 0
        """Registered bot workers (replaced by the bot hub when installed)."""
        self.bot_counts: Callable[[], Mapping[str, int]] = dict
        """Bots by name (replaced by the bot hub when installed)."""
        self.extra_breakers: list[Callable[[], Iterator[tuple[str, str]]]] = []
        """More breakers to show in ``voicebot_circuit_breaker_state`` (e.g. one per bot worker)."""
        self._state = HubState(
            connections=lambda: len(server.connections), sessions=lambda: len(server.hub.sessions),
            lobbies=lambda: len(server.hub.lobbies), breakers=self._breakers, bots=self._bots,
            workers=self._workers)
        self._registry: CollectorRegistry | None = None
        self.app = HttpApp()
        self.app.route("/", self._index)
        self.app.prefix("/static/", self._static)
        self.app.route("/healthz", self._healthz)
        self.app.route("/readyz", self._readyz)
        self.app.route("/metrics", self._metrics)
        self.app.route("/ws", self._plain_ws)
        server.errors.add_listener(self._on_error)
        server.close_hooks.append(self._on_close)

    # -- front door ---------------------------------------------------------------------------------
    async def front(self, stream: trio.abc.Stream, remote: str) -> tuple[trio.abc.Stream, str, str] | None:
        """Answer HTTP on ``stream``; for an accepted WebSocket upgrade return (replaying stream, target, client):
        the client is ``remote``, or the address a trusted proxy's forwarding headers name (see :meth:`client`)."""
        s = self.server.settings
        upgrade = await serve_http(stream, self._respond, remote=remote, head_timeout=s.hello_timeout,
                                   max_head=s.max_http_head, upgrade=self._check_upgrade)
        if upgrade is None:
            return None
        return upgrade.stream, upgrade.request.target, self.client(upgrade.request)

    def client(self, request: Request) -> str:
        """``host:port`` of the request's client: its TCP peer, unless that is a trusted proxy (``--trusted-proxies``)
        whose ``X-Forwarded-For`` / ``Forwarded`` headers name one. Ignored headers (malformed, or the two
        disagreeing) leave the proxy's address; the first from each proxy and header is logged and audited
        (``forwarded_ignored``), later ones are counted (``admin.stats`` ``quotas.forwarded_ignored``)."""
        peer = client_host(request.remote)
        proxies = self.server.proxies
        if not proxies.trusts(peer):
            return request.remote
        forwarded = proxies.client(peer, request.headers)
        if forwarded.problem is None:
            return forwarded.remote
        header = forwarded.header or ""
        if proxies.first_problem(peer, header):
            log.warning("ignored %s from trusted proxy %s: %s", header, request.remote, forwarded.problem)
            self.server.persistence.audit("forwarded_ignored", remote=request.remote, header=header,
                                          problem=forwarded.problem[:200], value=request.header(header)[:200])
        return request.remote

    async def _respond(self, request: Request) -> Response:
        """The route's answer; a failing route is classified and counted like any error and answered 500 with
        its correlation id (the connection and its neighbours carry on)."""
        try:
            response = await self.app.respond(request)
        except Exception as exc:
            ctx = ErrorContext(self.server.errors.ids.new(), remote=request.remote, component="http")
            decision = self.server.errors.handle(exc, ctx.request(None))
            response = json_response(500, {"status": "error", "code": decision.error.code,
                                           "correlation_id": decision.correlation_id})
        self.counters.count_http(_route_label(request.path), response.status)
        return response

    async def _check_upgrade(self, request: Request) -> Response | None:
        if request.path != "/ws":
            return await self._respond(request)
        origin = request.headers.get("origin")
        if self.origins.allows(origin, host=request.header("host"), tls=self.tls):
            self.counters.count_http("/ws", 101)
            return None
        client = self.client(request)
        log.warning("refused WebSocket from %s: origin %r not allowed", client, origin)
        self.server.persistence.audit("origin_denied", remote=client, origin=(origin or "")[:200],
                                      host=request.header("host")[:200])
        self.counters.count_http("/ws", 403)
        return text_response(403, "origin not allowed (see --allowed-origins)\n")

    # -- routes -------------------------------------------------------------------------------------
    async def _index(self, request: Request) -> Response:
        return await self.static.serve(request, "index.html")

    async def _static(self, request: Request) -> Response:
        return await self.static.serve(request, request.path.removeprefix("/static/"))

    async def _healthz(self, request: Request) -> Response:
        return json_response(200, {"status": "ok", "version": __version__})

    def not_ready(self) -> list[str]:
        """Why the server should not get traffic now (empty when ready)."""
        server = self.server
        reasons = []
        if server.stopping:
            reasons.append("stopping")
        elif server.listen and not server.listeners:
            reasons.append("not_listening")
        if server.persistence.breaker.state.value in _OPEN_STATES:
            reasons.append("persistence_breaker_open")
        if self.worker_count() < 1:
            reasons.append("no_bot_worker")
        if server.cluster is not None and server.cluster.status() != "available":
            reasons.append("cluster_unavailable")
        return reasons

    async def _readyz(self, request: Request) -> Response:
        reasons = self.not_ready()
        if reasons:
            return json_response(503, {"status": "not_ready", "reasons": reasons})
        return json_response(200, {"status": "ready", "reasons": []})

    def registry(self) -> CollectorRegistry:
        """This server's metrics registry, built on the first scrape (``prometheus_client`` loads only then)."""
        if self._registry is None:
            self._registry = metrics.new_registry(self.counters, self._state)
        return self._registry

    async def _metrics(self, request: Request) -> Response:
        body = metrics.exposition(self.registry(), metrics.BOT_REGISTRY)
        return Response(200, (("content-type", metrics.CONTENT_TYPE), ("cache-control", "no-store")), body)

    async def _plain_ws(self, request: Request) -> Response:
        return text_response(426, "this is the voicebot WebSocket endpoint: connect with a WebSocket client "
                                  "(Upgrade: websocket)\n", ("upgrade", "websocket"))

    # -- metric sources -----------------------------------------------------------------------------
    def _breakers(self) -> Iterator[tuple[str, str]]:
        for breaker in self.server.breakers:
            yield breaker.name, breaker.state.value
        for extra in self.extra_breakers:
            yield from extra()

    def _bots(self) -> Mapping[str, int]:
        return self.bot_counts()  # looked up per scrape: the bot hub replaces ``bot_counts`` after we start

    def _workers(self) -> int:
        return self.worker_count()

    def _on_error(self, record: ErrorRecord, error: VoiceBotError) -> None:
        self.counters.count_error(record.category, record.severity, record.code)

    def _on_close(self, conn: Connection) -> None:
        closed = conn.ws.closed
        if conn.close_decision is not None:
            code = conn.close_decision[0]
        else:
            code = closed.code if closed is not None else 1006
        self.counters.count_close(code)


def _route_label(path: str) -> str:
    return "/static" if path.startswith("/static/") else path
