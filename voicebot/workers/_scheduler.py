"""Sans-IO bot scheduling: registered workers, their capacity, and jobs (bots admitted onto a worker).

No Trio and no sockets here: the hub extension (:mod:`voicebot.workers._hub`) calls these methods from one
Trio task at a time, and every method runs without awaiting, so a capacity check and its reservation can never
interleave with another request's (admission is atomic: never more jobs than capacity on any worker).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ["Job", "JobState", "Scheduler", "WorkerInfo"]


class JobState(enum.StrEnum):
    """Lifecycle of a job on the hub."""

    STARTING = "starting"
    """Capacity reserved, ``worker.start`` sent, waiting for ``worker.started``/``worker.failed``."""
    RUNNING = "running"
    """The bot joined its lobby (``peer_id`` known)."""


@attrs.define(eq=False)
class Job:
    """One bot instance admitted onto a worker."""

    job_id: str
    bot: str
    lobby_id: str
    options: dict[str, Any]
    worker_id: str
    requester: int | None = None
    """Connection id of the client that asked for it (None for restored jobs)."""
    state: JobState = JobState.STARTING
    peer_id: str | None = None
    ticket: str | None = None
    """Join ticket for a password-protected lobby (granted by the hub core at admission)."""

    def wire(self) -> dict[str, Any]:
        """The ``job`` object of ``worker.start``."""
        job = {"job_id": self.job_id, "bot": self.bot, "lobby_id": self.lobby_id, "options": self.options}
        if self.ticket is not None:
            job["ticket"] = self.ticket
        return job


@attrs.define(eq=False)
class WorkerInfo:
    """A registered worker: what it runs, how many at once, and its jobs."""

    worker_id: str
    conn: int
    name: str
    bots: dict[str, str]
    """Bot name → description."""
    capacity: int
    jobs: dict[str, Job] = attrs.field(factory=dict)

    @property
    def load(self) -> int:
        """Jobs reserved or running (each takes one unit of capacity)."""
        return len(self.jobs)

    @property
    def free(self) -> int:
        """Capacity left."""
        return self.capacity - self.load


class Scheduler:
    """Workers, jobs and admission. ``new_id(prefix)`` makes ids (the hub's seeded id factory)."""

    def __init__(self, new_id: Callable[[str], str]) -> None:
        self.new_id = new_id
        self.workers: dict[str, WorkerInfo] = {}
        self.jobs: dict[str, Job] = {}
        self._by_conn: dict[int, WorkerInfo] = {}
        self.on_release: Callable[[Job], None] | None = None
        """Told of every job that ends here (released, or its worker unregistered)."""

    # -- workers ------------------------------------------------------------------------------------
    def register(self, conn: int, name: str, bots: dict[str, str], capacity: int) -> WorkerInfo:
        """Register the worker on connection ``conn`` (again: replaces its bot list and capacity)."""
        existing = self._by_conn.get(conn)
        if existing is not None:
            existing.bots, existing.capacity, existing.name = dict(bots), capacity, name
            return existing
        worker = WorkerInfo(self.new_id("w"), conn, name, dict(bots), capacity)
        self.workers[worker.worker_id] = worker
        self._by_conn[conn] = worker
        return worker

    def worker_of(self, conn: int) -> WorkerInfo | None:
        """The worker registered on connection ``conn``."""
        return self._by_conn.get(conn)

    def unregister(self, conn: int) -> tuple[WorkerInfo | None, list[Job]]:
        """Forget the worker on ``conn``; returns it and the jobs it had (all released)."""
        worker = self._by_conn.pop(conn, None)
        if worker is None:
            return None, []
        self.workers.pop(worker.worker_id, None)
        jobs = list(worker.jobs.values())
        for job in jobs:
            self.jobs.pop(job.job_id, None)
            if self.on_release is not None:
                self.on_release(job)
        worker.jobs.clear()
        return worker, jobs

    # -- admission ----------------------------------------------------------------------------------
    def bot_names(self) -> set[str]:
        """Names of every bot some registered worker runs."""
        return {name for w in self.workers.values() for name in w.bots}

    def offers(self, bot: str) -> bool:
        """Whether any registered worker can run ``bot``."""
        return any(bot in w.bots for w in self.workers.values())

    def candidates(self, bot: str, *, exclude: Iterable[str] = (),
                   usable: Callable[[WorkerInfo], bool] = lambda _w: True) -> list[WorkerInfo]:
        """Workers that run ``bot``, have free capacity and are ``usable`` (e.g. breaker not open),
        least loaded first (by load ratio, then absolute load, then registration order)."""
        skip = set(exclude)
        found = [w for w in self.workers.values()
                 if bot in w.bots and w.free > 0 and w.worker_id not in skip and usable(w)]
        return sorted(found, key=lambda w: (w.load / w.capacity, w.load))

    def reserve(self, bot: str, lobby_id: str, options: dict[str, Any], *, requester: int | None = None,
                exclude: Iterable[str] = (), usable: Callable[[WorkerInfo], bool] = lambda _w: True) -> Job | None:
        """Pick the least-loaded usable worker and reserve one unit of its capacity for a new job."""
        found = self.candidates(bot, exclude=exclude, usable=usable)
        if not found:
            return None
        worker = found[0]
        job = Job(self.new_id("j"), bot, lobby_id, dict(options), worker.worker_id, requester)
        worker.jobs[job.job_id] = job
        self.jobs[job.job_id] = job
        return job

    def release(self, job_id: str) -> Job | None:
        """Give a job's capacity back (it failed, stopped or was abandoned)."""
        job = self.jobs.pop(job_id, None)
        if job is not None:
            worker = self.workers.get(job.worker_id)
            if worker is not None:
                worker.jobs.pop(job_id, None)
            if self.on_release is not None:
                self.on_release(job)
        return job

    def started(self, job_id: str, peer_id: str) -> Job | None:
        """The job's bot joined as ``peer_id``."""
        job = self.jobs.get(job_id)
        if job is not None:
            job.state = JobState.RUNNING
            job.peer_id = peer_id
        return job

    def job_of_peer(self, peer_id: str) -> Job | None:
        """The running job whose bot is ``peer_id``."""
        return next((j for j in self.jobs.values() if j.peer_id == peer_id), None)

    def bot_list(self, usable: Callable[[WorkerInfo], bool] = lambda _w: True) -> list[dict[str, Any]]:
        """``[{name, description, available}]`` over all workers; ``available`` = some usable worker has room."""
        out: dict[str, dict[str, Any]] = {}
        for worker in self.workers.values():
            for name, description in worker.bots.items():
                entry = out.setdefault(name, {"name": name, "description": description, "available": False})
                if worker.free > 0 and usable(worker):
                    entry["available"] = True
        return [out[name] for name in sorted(out)]
