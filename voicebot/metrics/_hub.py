"""Hub-side metrics of one server: plain counters on the hot path, exposed by a collector at scrape time.

Counting a frame is a dict increment and a bisect (no ``prometheus_client`` child lookup or lock per message);
the :class:`HubCollector` turns the counters and the server's live state (connections, sessions, lobbies,
breakers, bots, workers) into metric families only when ``/metrics`` is scraped. Each server owns its counters
and its registry, so several servers in one process never share numbers.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Container, Iterable, Mapping

import attrs

from ..protocol import REQUEST_TYPES

__all__ = ["BREAKER_STATES", "HTTP_ROUTES", "REQUEST_BUCKETS", "SENT_TYPES", "HubCounters", "HubState"]

REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of ``voicebot_request_duration_seconds``."""

SENT_TYPES = frozenset({
    "welcome", "pong", "error", "chat", "signal", "signal.sent", "lobby.list", "lobby.created", "lobby.joined",
    "lobby.left", "lobby.state", "lobby.updated", "peer.joined", "peer.left", "name.registered", "bot.list",
    "bot.added", "bot.removed", "bot.status", "caption", "admin.stats", "admin.audit", "admin.kicked",
    "admin.lobby_closed", "worker.registered", "worker.start", "worker.stop",
})
"""Server message types counted by name in ``voicebot_messages_sent_total`` (with every request type; any other
type is counted as ``other``, so a label can never grow without bound)."""

HTTP_ROUTES = frozenset({"/", "/static", "/healthz", "/readyz", "/metrics", "/ws"})
"""Values of the ``route`` label of ``voicebot_http_requests_total`` (anything else is ``other``)."""

BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled")
"""Values of the ``state`` label of ``voicebot_circuit_breaker_state``."""


def _known(mtype: str | None, extra: Container[str] = frozenset(),
           requests: Container[str] = REQUEST_TYPES) -> str:
    if mtype is not None and (mtype in requests or mtype in extra):
        return mtype
    return "other"


class HubCounters:
    """The hot-path counters of one server (plain ints; read by :class:`HubCollector`)."""

    __slots__ = ("closes", "durations", "errors", "http", "received", "request_types", "sent")

    def __init__(self, request_types: Container[str] = REQUEST_TYPES) -> None:
        self.request_types = request_types
        """Request types counted by name: the server's own registry (core and extension types)."""
        self.received: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.errors: dict[tuple[str, str, str], int] = {}
        self.closes: dict[int, int] = {}
        self.durations: dict[str, list[float]] = {}
        """Per type: one count per bucket of :data:`REQUEST_BUCKETS` plus +Inf, then the sum of seconds."""
        self.http: dict[tuple[str, str], int] = {}
        """HTTP responses by (route, status code)."""

    def frame(self, mtype: str | None, seconds: float) -> None:
        """One frame received (``mtype`` None when it did not decode) and handled in ``seconds``."""
        label = mtype if mtype in self.durations else _known(mtype, requests=self.request_types)
        row = self.durations.get(label)
        if row is None:
            row = self.durations[label] = [0.0] * (len(REQUEST_BUCKETS) + 2)
        self.received[label] = self.received.get(label, 0) + 1
        row[bisect.bisect_left(REQUEST_BUCKETS, seconds)] += 1
        row[-1] += seconds

    def count_sent(self, mtype: str | None, n: int = 1) -> None:
        """``n`` messages of ``mtype`` queued for clients."""
        label = _known(mtype, SENT_TYPES, self.request_types)
        self.sent[label] = self.sent.get(label, 0) + n

    def count_error(self, category: str, severity: str, code: str) -> None:
        """One handled error."""
        key = (category, severity, code)
        self.errors[key] = self.errors.get(key, 0) + 1

    def count_http(self, route: str, status: int) -> None:
        """One HTTP response (``route`` from a fixed set, see :data:`HTTP_ROUTES`)."""
        key = (route if route in HTTP_ROUTES else "other", str(status))
        self.http[key] = self.http.get(key, 0) + 1

    def count_close(self, code: int) -> None:
        """One WebSocket connection closed with ``code``."""
        self.closes[code] = self.closes.get(code, 0) + 1


@attrs.frozen
class HubState:
    """Live readings of one server, taken at scrape time."""

    connections: Callable[[], int]
    sessions: Callable[[], int]
    lobbies: Callable[[], int]
    breakers: Callable[[], Iterable[tuple[str, str]]]
    """(breaker name, current state) pairs."""
    bots: Callable[[], Mapping[str, int]]
    """Bots running or starting, by bot name."""
    workers: Callable[[], int]
