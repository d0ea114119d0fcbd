"""Prometheus metrics (exposition with ``prometheus_client``, never by hand).

Two kinds of metrics live here:

- **Bot-side** metrics, recorded by bots and AI providers in whatever process runs them (the in-process worker
  of ``voicebot serve``, or an external ``voicebot worker``). They go to :data:`BOT_REGISTRY`, one registry per
  process, because a worker process serves exactly one ``/metrics``. Record through :func:`observe_turn_stage`
  and :func:`count_provider_request` only, so names and label values stay the public contract below.
- **Hub-side** metrics of one server (:mod:`voicebot.metrics._hub`): plain counters on the hot path and a
  collector that reads them and the server's live state at scrape time; each server has its own registry.

Contract (dashboards are built on these names and labels):

- ``voicebot_turn_latency_seconds{stage}`` — histogram; ``stage`` is one of :data:`TURN_STAGES`.
- ``voicebot_provider_requests_total{kind,provider,outcome}`` — counter; ``kind`` is ``stt``/``llm``/``tts``,
  ``provider`` the provider's name (``openai``, ``local``, …), ``outcome`` one of :data:`PROVIDER_OUTCOMES`.
- ``voicebot_ice_candidates_refused_total{source}`` — counter; remote ICE candidates a bot refused by the ICE
  policy (``--ice-deny-networks``), ``source`` ``trickle`` (a ``signal`` of kind ``candidate``) or ``sdp``.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from ._hub import (
    BREAKER_STATES,
    HTTP_ROUTES,
    REQUEST_BUCKETS,
    SENT_TYPES,
    HubCollector,
    HubCounters,
    HubState,
    new_registry,
)

__all__ = [
    "BOT_REGISTRY",
    "BREAKER_STATES",
    "CONTENT_TYPE",
    "HTTP_ROUTES",
    "PROVIDER_OUTCOMES",
    "REQUEST_BUCKETS",
    "SENT_TYPES",
    "TURN_STAGES",
    "HubCollector",
    "HubCounters",
    "HubState",
    "count_provider_request",
    "count_refused_candidate",
    "exposition",
    "new_registry",
    "observe_turn_stage",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""``Content-Type`` of the text exposition format."""

TURN_STAGES = ("stt", "llm_first_token", "tts_first_audio", "voice_to_voice")
"""Stages of one conversational turn: end of speech → STT final (``stt``), LLM request → first token
(``llm_first_token``), TTS request → first audio (``tts_first_audio``), end of speech → first bot audio frame sent
(``voice_to_voice``)."""

PROVIDER_OUTCOMES = ("ok", "error", "timeout", "circuit_open")
"""How a provider call ended: answered, failed, hit its deadline, or was not attempted because its circuit
breaker was open."""

PROVIDER_KINDS = ("stt", "llm", "tts")

BOT_REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's bot-side metrics (see the module docs)."""

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

_TURN_LATENCY = Histogram(
    "voicebot_turn_latency_seconds",
    "Latency of one stage of a bot's conversational turn",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
    registry=BOT_REGISTRY,
)
_PROVIDER_REQUESTS = Counter(
    "voicebot_provider_requests",
    "AI provider calls by kind, provider and outcome",
    ["kind", "provider", "outcome"],
    registry=BOT_REGISTRY,
)


def observe_turn_stage(stage: str, seconds: float) -> None:
    """Record one turn stage's latency. ``stage`` must be one of :data:`TURN_STAGES` (``ValueError`` otherwise,
    so a typo cannot silently create a new time series)."""
    if stage not in TURN_STAGES:
        raise ValueError(f"unknown turn stage {stage!r}")
    _TURN_LATENCY.labels(stage=stage).observe(max(0.0, seconds))


def count_provider_request(kind: str, provider: str, outcome: str) -> None:
    """Count one provider call. ``kind`` in :data:`PROVIDER_KINDS`, ``outcome`` in :data:`PROVIDER_OUTCOMES`
    (``ValueError`` otherwise)."""
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"unknown provider kind {kind!r}")
    if outcome not in PROVIDER_OUTCOMES:
        raise ValueError(f"unknown provider outcome {outcome!r}")
    _PROVIDER_REQUESTS.labels(kind=kind, provider=provider, outcome=outcome).inc()


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text exposition of ``registries`` one after another (their metric names must not overlap)."""
    return b"".join(generate_latest(registry) for registry in registries)


_REFUSED_CANDIDATES = Counter(
    "voicebot_ice_candidates_refused",
    "Remote ICE candidates refused by the ICE candidate policy",
    ["source"],
    registry=BOT_REGISTRY,
)


def count_refused_candidate(source: str) -> None:
    """Count one refused remote ICE candidate; ``source`` is ``trickle`` or ``sdp`` (``ValueError`` otherwise)."""
    if source not in ("trickle", "sdp"):
        raise ValueError(f"unknown candidate source {source!r}")
    _REFUSED_CANDIDATES.labels(source=source).inc()
