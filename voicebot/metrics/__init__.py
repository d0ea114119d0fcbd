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

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._hub import BREAKER_STATES, HTTP_ROUTES, REQUEST_BUCKETS, SENT_TYPES, HubCounters, HubState

if TYPE_CHECKING:
    from ._bot import (
        BOT_REGISTRY,
        CONTENT_TYPE,
        PROVIDER_OUTCOMES,
        TURN_STAGES,
        count_provider_request,
        count_refused_candidate,
        exposition,
        observe_turn_stage,
    )
    from ._collector import HubCollector, new_registry

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

# prometheus_client (~12 MiB) loads with the first bot-side metric or the first scrape, not with the hub.
__getattr__ = lazy_exports(__name__, {
    "BOT_REGISTRY": "._bot",
    "CONTENT_TYPE": "._bot",
    "PROVIDER_OUTCOMES": "._bot",
    "TURN_STAGES": "._bot",
    "count_provider_request": "._bot",
    "count_refused_candidate": "._bot",
    "exposition": "._bot",
    "observe_turn_stage": "._bot",
    "HubCollector": "._collector",
    "new_registry": "._collector",
})
