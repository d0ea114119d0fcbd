"""Bot quotas of the hub's bot scheduler: ``--max-bots-per-lobby`` and ``--max-bots-per-peer``.

Counted over the jobs this hub holds (starting or running) synchronously, so check-then-reserve cannot race on
one hub; in cluster mode each start is also counted in Redis by one atomic script over every hub's jobs, so the
quotas hold cluster-wide (two hubs starting the fifth bot of a lobby at once: one of them gets ``bot_quota``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import RateLimitError, VoiceBotError

if TYPE_CHECKING:
    from ..server import Server
    from ._scheduler import Job, Scheduler

__all__ = ["BotQuotas"]


def _refusal(per: str, limit: int) -> RateLimitError:
    message = f"this lobby already has {limit} bots" if per == "lobby" else f"you already have {limit} bots"
    return RateLimitError(message, code="bot_quota", retry_after=30.0, context={"per": per})


class BotQuotas:
    """Who added which bot, and the bot quotas (see the module docstring)."""

    def __init__(self, server: Server, scheduler: Scheduler) -> None:
        self.server = server
        self.scheduler = scheduler
        self.owners: dict[str, str] = {}
        """job id -> peer id of the member who added the bot (only they or an admin may remove it)."""

    def check(self, lobby_id: str, owner: str) -> None:
        """``bot_quota`` when the lobby or the requesting peer already has its maximum of bots on this hub."""
        s = self.server.settings
        jobs = self.scheduler.jobs
        for job_id in [j for j in self.owners if j not in jobs]:
            del self.owners[job_id]
        if s.max_bots_per_lobby and sum(1 for j in jobs.values() if j.lobby_id == lobby_id) >= s.max_bots_per_lobby:
            raise _refusal("lobby", s.max_bots_per_lobby)
        if s.max_bots_per_peer and sum(1 for o in self.owners.values() if o == owner) >= s.max_bots_per_peer:
            raise _refusal("peer", s.max_bots_per_peer)

    async def take(self, job: Job, owner: str) -> None:
        """Cluster mode: count ``job`` (reserved here) cluster-wide; ``bot_quota`` when another hub's bots
        already fill a quota (the caller releases the job)."""
        cluster, s = self.server.cluster, self.server.settings
        if cluster is None or not (s.max_bots_per_lobby or s.max_bots_per_peer):
            return
        result = await cluster.bots.take_quota(job.job_id, job.lobby_id, owner, s.max_bots_per_lobby,
                                               s.max_bots_per_peer)
        if result == "lobby":
            raise _refusal("lobby", s.max_bots_per_lobby)
        if result == "peer":
            raise _refusal("peer", s.max_bots_per_peer)

    async def give_back(self, job: Job, owner: str) -> None:
        """Cluster mode: ``job`` did not start (it was released here without its owner, see :meth:`released`):
        its cluster-wide places go back before this returns, so a retry right after it, on this hub or any
        other, is not refused by them. Should Redis fail, the next heartbeat that reaches it drops them."""
        cluster, s = self.server.cluster, self.server.settings
        if cluster is None or not (s.max_bots_per_lobby or s.max_bots_per_peer):
            return
        try:
            await cluster.bots.freed(job.job_id, job.lobby_id, owner)
        except VoiceBotError as exc:
            cluster.errors.handle(exc, cluster.error_context.request(None))

    def released(self, job: Job) -> None:
        """``job`` ended or never started: in cluster mode its places go back (queued)."""
        owner = self.owners.get(job.job_id)
        if self.server.cluster is not None and owner is not None:
            self.server.cluster.bots.free_quota(job.job_id, job.lobby_id, owner)

    def entries(self) -> list[list[str]]:
        """``[[job id, lobby id, owner], …]`` of this hub's jobs (the heartbeat re-asserts them in Redis)."""
        return [[job_id, job.lobby_id, self.owners[job_id]] for job_id, job in self.scheduler.jobs.items()
                if job_id in self.owners]
