"""Hub side of bots, the workers' messages: ``worker.register``/``started``/``failed``/``stopped`` and a worker's
connection closing (its jobs end: their bots leave their lobbies with reason ``disconnected``)."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from ..errors import AuthError, ProviderError, RequestContext, Severity, ValidationError
from ..hub import Action
from ..server import Connection
from ._protocol import WorkerFailed, WorkerRegister, WorkerStarted, WorkerStopped
from ._scheduler import WorkerInfo

if TYPE_CHECKING:
    from ._hub import BotHub

__all__ = ["WorkerMessages"]

log = logging.getLogger("voicebot.workers")


class WorkerMessages:
    """The ``worker.*`` handlers and the close hook of a :class:`~voicebot.workers.BotHub` (``bot_hub.workers``)."""

    def __init__(self, bots: BotHub) -> None:
        self.bots = bots

    def _worker(self, conn: Connection) -> WorkerInfo:
        worker = self.bots.scheduler.worker_of(conn.id)
        if worker is None:
            raise AuthError("register as a worker first", code="not_a_worker")
        return worker

    async def register(self, conn: Connection, req: WorkerRegister, rctx: RequestContext) -> None:
        expected = [t for t in (self.bots.settings.worker_token, self.bots.local_token) if t]
        if not any(secrets.compare_digest(req.token.encode(), t.encode()) for t in expected):
            raise AuthError("invalid worker token", code="worker_token_invalid", field="token")
        bots = {b.name: b.description for b in req.bots}
        worker = self.bots.scheduler.register(conn.id, req.name, bots, req.capacity)
        log.info("worker %s (%s) registered: bots %s, capacity %d", worker.worker_id, req.name,
                 sorted(bots), req.capacity)
        conn.send(self.bots.reply(req, {"type": "worker.registered", "worker_id": worker.worker_id}))

    async def started(self, conn: Connection, req: WorkerStarted, rctx: RequestContext) -> None:
        worker = self._worker(conn)
        job = self.bots.scheduler.jobs.get(req.job_id)
        if job is None or job.worker_id != worker.worker_id:  # abandoned (timed out) or removed meanwhile
            self.bots.send(conn.id, {"type": "worker.stop", "job_id": req.job_id})
            self.bots.server.apply(self.bots.end_bot(req.peer_id, "left"))
            return
        previous = job.peer_id
        self.bots.scheduler.started(req.job_id, req.peer_id)
        if previous is not None and previous != req.peer_id:  # restarted without resuming its session
            self.bots.server.apply(self.bots.end_bot(previous, "disconnected"))
        pending = self.bots.pending.get(req.job_id)
        if pending is not None:
            pending.peer_id = req.peer_id
            pending.done.set()

    async def failed(self, conn: Connection, req: WorkerFailed, rctx: RequestContext) -> None:
        worker = self._worker(conn)
        pending = self.bots.pending.get(req.job_id)
        if pending is not None:
            if req.retryable:
                pending.error = ProviderError(req.message or "bot failed", code=req.code, severity=Severity.LOW)
            else:  # the request was wrong (e.g. bad options): not the worker's fault, not retried elsewhere
                pending.error = ValidationError(req.message or "bot refused the request", code=req.code)
            pending.done.set()
            return
        job = self.bots.scheduler.jobs.get(req.job_id)
        if job is not None and job.worker_id == worker.worker_id:
            self.bots.scheduler.release(job.job_id)
            if job.peer_id is not None:
                self.bots.server.apply(self.bots.end_bot(job.peer_id, "disconnected"))

    async def stopped(self, conn: Connection, req: WorkerStopped, rctx: RequestContext) -> None:
        worker = self._worker(conn)
        job = self.bots.scheduler.jobs.get(req.job_id)
        if job is not None and job.worker_id == worker.worker_id:
            self.bots.scheduler.release(job.job_id)
            if job.peer_id is not None:
                self.bots.server.apply(self.bots.end_bot(job.peer_id, "left"))

    def connection_closed(self, conn: Connection) -> None:
        worker, jobs = self.bots.scheduler.unregister(conn.id)
        if worker is None:
            return
        log.warning("worker %s disconnected; %d bot(s) leave their lobbies", worker.worker_id, len(jobs))
        self.bots.breakers.remove(worker.worker_id)
        actions: list[Action] = []
        for job in jobs:
            pending = self.bots.pending.get(job.job_id)
            if pending is not None:
                pending.error = ProviderError("worker disconnected", code="worker_disconnected",
                                              severity=Severity.LOW)
                pending.done.set()
            if job.peer_id is not None:
                actions += self.bots.end_bot(job.peer_id, "disconnected")
        self.bots.server.apply(actions)
