"""What an assistant keeps beyond one life of its bot object: the conversation and its analytics.

The worker creates a *new* bot object for every supervised restart of a job (same job id, same peer id: the
session is resumed). :data:`MEMORY` — one per worker process — keeps each job's conversation (as
``Conversation.to_dict()``, updated after every turn), whether it already greeted, and its
:class:`AssistantAnalytics`, keyed by job id, so the restarted bot finds its context and counters where it left
them. Bounded: the least recently used of more than :data:`MAX_JOBS` entries is forgotten (a worker runs far
fewer bots at once). ``voicebot serve`` shows the in-process worker's analytics in ``admin.stats``
(``assistants``); an external ``voicebot worker`` exports the same figures through its metrics
(``voicebot_turn_latency_seconds``, ``voicebot_provider_requests_total``) since it has no ``admin.stats`` of its own.
"""

from __future__ import annotations

import collections
from typing import Any

import attrs

from ...metrics import TURN_STAGES, observe_turn_stage
from ...providers._stats import percentile

__all__ = ["MAX_JOBS", "MEMORY", "AssistantAnalytics", "AssistantMemory", "JobMemory", "percentile"]

MAX_JOBS = 1000
"""Jobs remembered per worker process (least recently used forgotten first)."""
_SAMPLES = 500
"""Latency samples kept per stage and per stage+provider (a sliding window for the percentiles)."""


@attrs.define
class AssistantAnalytics:
    """Per-bot counters and latency windows (per stage, and per stage and provider)."""

    turns: int = 0
    """Replies started (greeting excluded)."""
    interruptions: int = 0
    """Replies cut by barge-in."""
    fallbacks: int = 0
    """Provider calls answered by a fallback (a primary failed or its breaker was open)."""
    degraded: int = 0
    """Turns where a whole provider chain failed (apology played)."""
    speculative: dict[str, int] = attrs.field(factory=lambda: {"prepared": 0, "used": 0, "withdrawn": 0})
    """Replies prepared during the endpointing silence, played, or thrown away (the speaker went on)."""
    barge_in: collections.deque[float] = attrs.field(factory=lambda: collections.deque(maxlen=_SAMPLES))
    """Seconds from the barge-in threshold being crossed to the outgoing audio being flushed."""
    last_barge_in_wall: float | None = None
    """Wall-clock time (``time.time()``) of the latest flush (lets a benchmark compare with what callers heard)."""
    latency: dict[str, collections.deque[float]] = attrs.field(factory=dict)
    by_provider: dict[str, collections.deque[float]] = attrs.field(factory=dict)

    def observe(self, stage: str, seconds: float, provider: str | None = None) -> None:
        """Record one stage latency here and in the process metrics (``voicebot_turn_latency_seconds``)."""
        observe_turn_stage(stage, seconds)
        self.latency.setdefault(stage, collections.deque(maxlen=_SAMPLES)).append(seconds)
        if provider:
            self.by_provider.setdefault(f"{stage}:{provider}", collections.deque(maxlen=_SAMPLES)).append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: counters and p50/p95 (seconds) per stage and per stage+provider."""

        def summary(values: collections.deque[float]) -> dict[str, Any]:
            return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}

        return {
            "turns": self.turns, "interruptions": self.interruptions, "fallbacks": self.fallbacks,
            "degraded": self.degraded, "speculative": dict(self.speculative),
            "barge_in_flush": summary(self.barge_in),
            "last_barge_in_wall": self.last_barge_in_wall,
            "latency": {stage: summary(self.latency[stage]) for stage in TURN_STAGES if stage in self.latency},
            "latency_by_provider": {key: summary(values) for key, values in sorted(self.by_provider.items())},
        }


@attrs.define
class JobMemory:
    """One job's remembered state."""

    conversation: dict[str, Any] | None = None
    """``Conversation.to_dict()`` after the last turn (None before the first)."""
    greeted: bool = False
    peer_id: str = ""
    lobby_id: str = ""
    lives: int = 0
    """Bot objects that ran this job (1 + restarts)."""
    analytics: AssistantAnalytics = attrs.field(factory=AssistantAnalytics)


class AssistantMemory:
    """Job id → :class:`JobMemory`, LRU-bounded (see the module docs)."""

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self.max_jobs = max_jobs
        self._jobs: collections.OrderedDict[str, JobMemory] = collections.OrderedDict()

    def job(self, job_id: str) -> JobMemory:
        """The memory of ``job_id`` (created empty on first use)."""
        memory = self._jobs.get(job_id)
        if memory is None:
            memory = self._jobs[job_id] = JobMemory()
            while len(self._jobs) > self.max_jobs:
                self._jobs.popitem(last=False)
        self._jobs.move_to_end(job_id)
        return memory

    def forget(self, job_id: str) -> None:
        """Drop ``job_id`` (the job ended for good)."""
        self._jobs.pop(job_id, None)

    def snapshot(self) -> dict[str, Any]:
        """``{job_id: {peer_id, lobby_id, lives, turns, ...analytics}}`` for ``admin.stats``."""
        return {job_id: {"peer_id": m.peer_id, "lobby_id": m.lobby_id, "lives": m.lives,
                         "context_turns": len((m.conversation or {}).get("turns", [])), **m.analytics.snapshot()}
                for job_id, m in self._jobs.items()}


MEMORY = AssistantMemory()
"""This worker process's assistant memory."""
