"""Hub side of bots: the ``bot.*`` and ``worker.*`` handlers installed onto a :class:`~voicebot.server.Server`.

``install_bot_hub(server, settings)`` registers the request models and handlers and a connection-closed hook.
Admission of ``bot.add``: pick the least-loaded worker whose circuit breaker admits calls, reserve one unit of
its capacity synchronously (atomic under Trio: no checkpoint between check and reservation), send
``worker.start`` and wait (bounded by ``start_timeout``) for ``worker.started``; a failure or timeout releases
the reservation, counts against that worker's breaker and retries on another worker (``max_attempts``).
A worker whose connection closes loses its jobs: their bots leave their lobbies with reason ``disconnected``
(the ``worker.*`` messages: :mod:`._worker_messages`; the bot quotas: :mod:`._quotas`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import attrs
import trio

from ..errors import (
    LobbyError,
    ProviderError,
    RateLimitError,
    RequestContext,
    Severity,
    ValidationError,
    VoiceBotError,
)
from ..hub import BOT_GONE_CLOSE, Action, Send, bot_lobby, check_bot_removal_by
from ..resilience import BreakerRegistry, CircuitOpenError, CircuitState
from ..server import Connection, Server
from ._protocol import BotAdd, BotList, BotRemove, WorkerFailed, WorkerRegister, WorkerStarted, WorkerStopped
from ._quotas import BotQuotas
from ._scheduler import Job, Scheduler, WorkerInfo
from ._worker_messages import WorkerMessages

__all__ = ["BOT_GONE_CLOSE", "BotHub", "BotHubSettings", "install_bot_hub"]

log = logging.getLogger("voicebot.workers")

#: Seconds a bot's join ticket stays valid.
TICKET_TTL = 600.0


@attrs.frozen(kw_only=True)
class BotHubSettings:
    """Tunables of the hub's bot scheduler."""

    worker_token: str | None = None
    """Token workers must present in ``worker.register`` (``VOICEBOT_WORKER_TOKEN``); None: only the
    in-process worker (which uses :attr:`BotHub.local_token`) can register."""
    start_timeout: float = 20.0
    """Seconds a worker has to report ``worker.started`` for one attempt."""
    max_attempts: int = 3
    """Workers tried per ``bot.add`` before giving up."""
    breaker_failures: int = 3
    """Consecutive start failures that open a worker's circuit breaker."""
    breaker_wait: float = 30.0
    """Seconds an open worker breaker waits before admitting a probe."""


@attrs.define(eq=False)
class _Pending:
    done: trio.Event = attrs.field(factory=trio.Event)
    peer_id: str | None = None
    error: VoiceBotError | None = None


class BotHub:
    """The installed extension (see :func:`install_bot_hub`)."""

    def __init__(self, server: Server, settings: BotHubSettings | None = None) -> None:
        self.server = server
        self.settings = settings if settings is not None else BotHubSettings()
        self.scheduler = Scheduler(server.hub.new_id)
        """Workers and jobs."""
        self.breakers = BreakerRegistry()
        """One breaker per worker id."""
        self.local_token = secrets.token_urlsafe(24)
        """Token accepted from the in-process worker (never configured, never logged)."""
        self.pending: dict[str, _Pending] = {}
        """job id -> the start attempt waiting for its worker's answer."""
        self.quotas = BotQuotas(server, self.scheduler)
        """Bot quotas and owners (cluster-wide in cluster mode)."""
        self.scheduler.on_release = self.quotas.released

    def install(self) -> BotHub:
        """Register handlers and the close hook on the server."""
        s = self.server
        s.add_handler(BotList, self._bot_list)
        s.add_handler(BotAdd, self._bot_add, concurrent=True)
        s.add_handler(BotRemove, self._bot_remove)
        workers = WorkerMessages(self)
        s.add_handler(WorkerRegister, workers.register)
        s.add_handler(WorkerStarted, workers.started)
        s.add_handler(WorkerFailed, workers.failed)
        s.add_handler(WorkerStopped, workers.stopped)
        s.close_hooks.append(workers.connection_closed)
        s.auth.bot_tokens.append(lambda: (self.settings.worker_token or "", self.local_token))
        s.auth.reserved_sources.append(self.scheduler.bot_names)
        s.http.worker_count = lambda: len(self.scheduler.workers)  # /readyz and voicebot_bot_workers
        s.http.bot_counts = self._bot_counts  # voicebot_bots{bot}
        s.http.extra_breakers.append(lambda: ((b.name, b.state.value) for b in self.breakers))
        if s.cluster is not None:  # workers registered here serve the whole cluster
            s.cluster.bots.offers = self._offers
            s.cluster.bots.add_here = self._remote_add
            s.cluster.bots.remove_here = self._remove_here
            s.cluster.bots.jobs = self.quotas.entries
        return self

    def _offers(self) -> dict[str, list[Any]]:
        """``{bot: [free capacity over usable workers, description]}`` of this hub's workers."""
        offers: dict[str, list[Any]] = {}
        for worker in self.scheduler.workers.values():
            for name, description in worker.bots.items():
                entry = offers.setdefault(name, [0, description])
                entry[0] += worker.free if self._usable(worker) else 0
        return offers

    def _bot_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.scheduler.workers.values():
            for job in worker.jobs.values():
                counts[job.bot] = counts.get(job.bot, 0) + 1
        return counts

    # -- helpers ------------------------------------------------------------------------------------
    def breaker_of(self, worker: WorkerInfo) -> Any:
        """The circuit breaker guarding ``worker``."""
        return self.breakers.get(worker.worker_id, failure_threshold=self.settings.breaker_failures,
                                 wait_duration_in_open_state=self.settings.breaker_wait)

    def _usable(self, worker: WorkerInfo) -> bool:
        return bool(self.breaker_of(worker).state is not CircuitState.OPEN)

    def send(self, conn_id: int, message: dict[str, Any]) -> None:
        """Send ``message`` to connection ``conn_id`` (a worker's, or a requester's)."""
        self.server.apply([Send((conn_id,), message)])

    @staticmethod
    def reply(req: Any, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` as the reply to ``req`` (its ``reply_to`` set when the request had an id)."""
        if req.id is not None:
            message["reply_to"] = req.id
        return message

    # -- client requests ----------------------------------------------------------------------------
    async def _bot_list(self, conn: Connection, req: BotList, rctx: RequestContext) -> None:
        bots = self.scheduler.bot_list(self._usable)
        if self.server.cluster is not None:  # and the bots of workers registered with other hubs
            try:
                remote = await self.server.cluster.bots.catalog()
            except VoiceBotError:
                remote = {}  # Redis unreachable: this hub's workers only
            local = {b["name"]: b for b in bots}
            for name, (description, available) in remote.items():
                entry = local.setdefault(name, {"name": name, "description": description, "available": False})
                entry["available"] = entry["available"] or available
            bots = [local[name] for name in sorted(local)]
        conn.send(self.reply(req, {"type": "bot.list", "bots": bots}))

    async def _bot_add(self, conn: Connection, req: BotAdd, rctx: RequestContext) -> None:
        hub = self.server.hub
        lobby = bot_lobby(hub, conn.id, req.lobby_id)  # the hub's membership rules: which lobby, whose
        lobby_id = lobby.id
        session = hub.require(conn.id)
        cluster, local = self.server.cluster, self.scheduler.offers(req.bot)
        if not local and cluster is None:
            raise ValidationError(f"no worker runs bot {req.bot!r}", code="bot_unknown", field="bot")
        if cluster is not None and not self.scheduler.candidates(req.bot, usable=self._usable):
            # Cluster mode: a worker registered with another hub may have room for it.
            request = {"bot": req.bot, "lobby_id": lobby_id, "options": dict(req.options), "owner": session.peer_id,
                       "password": lobby.password_hash is not None}
            timeout = self.settings.start_timeout * self.settings.max_attempts + 5.0
            reply = await cluster.bots.add(request, timeout)
            if reply is not None and not reply["ok"]:
                raise _error_from_wire(reply)
            if reply is not None:
                conn.send(self.reply(req, {"type": "bot.added", "peer_id": reply["peer_id"], "bot": req.bot,
                                            "lobby_id": lobby_id, "job_id": reply["job_id"]}))
                return
            if not local:
                raise ValidationError(f"no worker runs bot {req.bot!r}", code="bot_unknown", field="bot")
        peer_id, job_id = await self._start_here(req.bot, lobby_id, dict(req.options), session.peer_id, conn.id,
                                                 password=lobby.password_hash is not None)
        conn.send(self.reply(req, {"type": "bot.added", "peer_id": peer_id, "bot": req.bot,
                                    "lobby_id": lobby_id, "job_id": job_id}))

    async def _remote_add(self, request: dict[str, Any]) -> dict[str, Any]:
        """A ``bot.add`` another hub could not serve, started on this hub's workers."""
        bot = str(request["bot"])
        if not self.scheduler.offers(bot):
            raise ValidationError(f"no worker runs bot {bot!r}", code="bot_unknown", field="bot")
        peer_id, job_id = await self._start_here(bot, str(request["lobby_id"]), dict(request["options"]),
                                                 str(request["owner"]), None, password=bool(request["password"]))
        return {"ok": True, "peer_id": peer_id, "job_id": job_id}

    async def _start_here(self, bot: str, lobby_id: str, options: dict[str, Any], owner: str,
                          requester: int | None, *, password: bool) -> tuple[str, str]:
        """Start ``bot`` for ``owner`` on this hub's workers (retried on others); (bot peer id, job id)."""
        hub = self.server.hub
        tried: list[str] = []
        last: VoiceBotError | None = None
        for _ in range(self.settings.max_attempts):
            self.quotas.check(lobby_id, owner)
            job = self.scheduler.reserve(bot, lobby_id, options, requester=requester, exclude=tried,
                                         usable=self._usable)
            if job is None:
                break
            self.quotas.owners[job.job_id] = owner
            tried.append(job.worker_id)
            try:
                await self.quotas.take(job, owner)  # cluster mode: counted over every hub's bots
                if password:  # a protected lobby lets its bot in by ticket (the requester is a member)
                    job.ticket = hub.tickets.grant(lobby_id, trio.current_time(), TICKET_TTL)
                    if self.server.cluster is not None:  # its bot may connect to any hub
                        await self.server.cluster.bots.store_ticket(job.ticket, lobby_id, TICKET_TTL)
            except BaseException:  # a full quota (or no Redis) is the answer: no other worker is tried
                self._abandon(job)
                raise
            try:
                peer_id = await self._start(job)
            except VoiceBotError as exc:
                await self._abandon_now(job, owner)
                if not exc.retryable:
                    raise
                last = exc
                continue
            except BaseException:  # the requester went away (Cancelled) mid-start: give the capacity back
                self._abandon(job)
                raise
            return peer_id, job.job_id
        if last is None:
            raise RateLimitError(f"no capacity for bot {bot!r}; try again later", code="bot_capacity",
                                 retry_after=5.0)
        raise ProviderError(f"bot {bot!r} could not be started: {last.message}", code="bot_start_failed",
                            severity=Severity.LOW, context={"last_code": last.code})

    async def _start(self, job: Job) -> str:
        """One attempt on ``job``'s worker, through that worker's breaker; returns the bot's peer id."""
        worker = self.scheduler.workers.get(job.worker_id)
        if worker is None:
            raise ProviderError("worker went away", code="worker_disconnected", severity=Severity.LOW)
        pending = _Pending()
        self.pending[job.job_id] = pending

        async def attempt() -> str:
            self.send(worker.conn, {"type": "worker.start", "job": job.wire()})
            with trio.move_on_after(self.settings.start_timeout):
                await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.peer_id is None:
                raise ProviderError("worker did not start the bot in time", code="bot_start_timeout",
                                    severity=Severity.LOW)
            return pending.peer_id

        try:
            peer_id: str = await self.breaker_of(worker).call(attempt)
            return peer_id
        except CircuitOpenError as exc:
            raise ProviderError("worker is unavailable", code="worker_unavailable", severity=Severity.LOW) from exc
        finally:
            self.pending.pop(job.job_id, None)

    async def _abandon_now(self, job: Job, owner: str) -> None:
        """:meth:`_abandon` a job that failed to start, its cluster-wide quota places given back before this
        returns (not queued): the next attempt, or the requester's retry on any hub, must not meet them."""
        self.quotas.owners.pop(job.job_id, None)  # released without an owner: nothing queued
        self._abandon(job)
        await self.quotas.give_back(job, owner)

    def _abandon(self, job: Job) -> None:
        """Release a job that did not start (and tell its worker to stop it, in case it still does)."""
        if self.scheduler.release(job.job_id) is not None:
            self._stop_on_worker(job)
            if job.peer_id is not None:
                self.server.apply(self.end_bot(job.peer_id, "left"))

    def _stop_on_worker(self, job: Job) -> None:
        worker = self.scheduler.workers.get(job.worker_id)
        if worker is not None:
            self.send(worker.conn, {"type": "worker.stop", "job_id": job.job_id})

    async def _bot_remove(self, conn: Connection, req: BotRemove, rctx: RequestContext) -> None:
        session = self.server.hub.session_of(conn.id)
        assert session is not None
        request = {"peer_id": req.peer_id, "requester": session.peer_id, "lobby_id": session.lobby_id,
                   "admin": session.admin}
        cluster = self.server.cluster
        if self.scheduler.job_of_peer(req.peer_id) is None and cluster is not None:  # another hub's bot?
            reply = await cluster.bots.remove(req.peer_id, request, self.settings.start_timeout)
            if reply is not None and not reply["ok"]:
                raise _error_from_wire(reply)
            if reply is not None:
                conn.send(self.reply(req, {"type": "bot.removed", "peer_id": req.peer_id}))
                return
        await self._remove_here(request)
        conn.send(self.reply(req, {"type": "bot.removed", "peer_id": req.peer_id}))

    async def _remove_here(self, request: dict[str, Any]) -> dict[str, Any]:
        """Stop a bot whose job this hub holds, for ``request["requester"]`` (its owner, or an admin)."""
        peer_id = str(request["peer_id"])
        job = self.scheduler.job_of_peer(peer_id)
        if job is None:
            raise LobbyError(f"no bot {peer_id!r}", code="bot_not_found", field="peer_id")
        check_bot_removal_by(str(request["requester"]), request["lobby_id"], bool(request["admin"]), job.lobby_id,
                             self.quotas.owners.get(job.job_id))
        self.scheduler.release(job.job_id)
        self._stop_on_worker(job)
        self.server.apply(self.end_bot(peer_id, "left"))
        return {"ok": True}

    def end_bot(self, peer_id: str, reason: str) -> list[Action]:
        """The hub's decision to end a bot now (it leaves its lobby with ``reason``; its socket closes)."""
        return self.server.hub.end_bot(peer_id, reason, trio.current_time())


def install_bot_hub(server: Server, settings: BotHubSettings | None = None) -> BotHub:
    """Install bots and workers onto ``server`` (call before it serves); returns the :class:`BotHub`."""
    return BotHub(server, settings).install()


def _error_from_wire(reply: dict[str, Any]) -> VoiceBotError:
    """The error another hub relayed (cluster mode only: the cluster package loads here, not at start)."""
    from ..cluster import error_from_wire  # noqa: PLC0415

    return error_from_wire(reply)
