"""The scrape-time collector of one server's hub metrics (``prometheus_client`` loads with it, on first scrape)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._hub import BREAKER_STATES, REQUEST_BUCKETS, HubCounters, HubState

__all__ = ["HubCollector", "new_registry"]


class HubCollector(Collector):
    """Exposes :class:`HubCounters` and :class:`HubState` under the public metric names (README "Metrics")."""

    def __init__(self, counters: HubCounters, state: HubState) -> None:
        self.counters = counters
        self.state = state

    def collect(self) -> Iterator[Metric]:
        """Build every family from the current numbers."""
        c, s = self.counters, self.state
        yield _gauge("voicebot_connections", "Open WebSocket connections", s.connections())
        yield _gauge("voicebot_sessions", "Sessions, including those in their resume grace", s.sessions())
        yield _gauge("voicebot_lobbies", "Lobbies that exist", s.lobbies())
        yield _counter("voicebot_messages_received", "Frames received from clients by message type", ["type"],
                       {(k,): v for k, v in c.received.items()})
        yield _counter("voicebot_messages_sent", "Messages queued for clients by message type", ["type"],
                       {(k,): v for k, v in c.sent.items()})
        yield _counter("voicebot_errors", "Handled errors by category, severity and code",
                       ["category", "severity", "code"], {k: float(v) for k, v in c.errors.items()})
        yield _counter("voicebot_http_requests", "HTTP responses by route and status code", ["route", "code"],
                       {k: float(v) for k, v in c.http.items()})
        yield _counter("voicebot_connections_closed", "Closed WebSocket connections by close code", ["code"],
                       {(str(k),): v for k, v in c.closes.items()})
        breakers = GaugeMetricFamily("voicebot_circuit_breaker_state",
                                     "Circuit breaker state: 1 for the current state, 0 for the others",
                                     labels=["breaker", "state"])
        for name, current in s.breakers():
            for state in BREAKER_STATES:
                breakers.add_metric([name, state], 1.0 if state == current else 0.0)
        yield breakers
        durations = HistogramMetricFamily("voicebot_request_duration_seconds",
                                          "Seconds from a frame received to its reply queued, by message type",
                                          labels=["type"])
        for mtype, row in c.durations.items():
            cumulative, buckets = 0.0, []
            for bound, n in zip((*REQUEST_BUCKETS, float("inf")), row[:-1], strict=True):
                cumulative += n
                buckets.append((_le(bound), cumulative))
            durations.add_metric([mtype], buckets, row[-1])
        yield durations
        bots = GaugeMetricFamily("voicebot_bots", "Bots running or starting, by bot name", labels=["bot"])
        for bot, n in sorted(s.bots().items()):
            bots.add_metric([bot], float(n))
        yield bots
        yield _gauge("voicebot_bot_workers", "Registered bot workers", s.workers())


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _counter(name: str, doc: str, labels: list[str], values: Mapping[tuple[str, ...], float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), float(value))
    return family


def new_registry(counters: HubCounters, state: HubState) -> CollectorRegistry:
    """A registry holding one server's :class:`HubCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(counters, state))
    return registry
