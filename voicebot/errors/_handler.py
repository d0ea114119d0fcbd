"""The central ErrorHandler: one policy for every connection and background task.

It turns a failure into a :class:`Decision` (what to tell the client, whether to close and how, which
recovery action to run), counts it, logs one structured line, and notifies listeners. It performs no
I/O itself: the caller (a connection, a background task) carries the decision out.
"""

from __future__ import annotations

import collections
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import attrs
import trio

from ._classify import Classification, classify, split_passthrough
from ._types import DEFAULT_CLOSE_CODE, Category, Severity, VoiceBotError

__all__ = ["Decision", "ErrorContext", "ErrorHandler", "ErrorRecord", "IdFactory"]

log = logging.getLogger("voicebot.errors")

#: Close code used when a client keeps producing errors.
POLICY_VIOLATION = 1008


class IdFactory:
    """Correlation-id source: a random prefix plus a counter. The prefix comes from ``secrets`` (clients see
    correlation ids), or from an injected seeded rng so tests and replays are deterministic."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng
        self._count = 0

    def new(self) -> str:
        """Return a new correlation id such as ``c3f9a1-1f``."""
        self._count += 1
        bits = secrets.randbits(24) if self._rng is None else self._rng.getrandbits(24)
        return f"{bits:06x}-{self._count:x}"


@attrs.define
class ErrorContext:
    """Where an error happened. Connections keep one and update ``lobby_id``/``peer_id`` as they change."""

    correlation_id: str
    """Connection-level correlation id (request ids derive from it)."""
    peer_id: str | None = None
    lobby_id: str | None = None
    remote: str | None = None
    component: str = "connection"
    """Which task or subsystem: ``reader``, ``writer``, ``heartbeat``, ``store``…"""
    _requests: int = 0

    def request(self, message_type: str | None, request_id: str | int | None = None) -> RequestContext:
        """A per-request child context with its own correlation id (``<conn>.<n>``)."""
        self._requests += 1
        return RequestContext(self, f"{self.correlation_id}.{self._requests}", message_type, request_id)


class RequestContext(NamedTuple):
    """Context of one request on a connection (immutable).

    A named tuple rather than a frozen attrs class: one is made for every frame a connection receives, and a
    tuple is built several times faster than a frozen class sets its fields one by one.
    """

    connection: ErrorContext
    correlation_id: str
    message_type: str | None
    request_id: str | int | None


@attrs.frozen
class ErrorRecord:
    """One handled error as kept in the statistics' recent list and given to listeners."""

    time: float
    correlation_id: str
    code: str
    category: str
    severity: str
    message: str
    peer_id: str | None
    lobby_id: str | None
    message_type: str | None
    component: str
    parts: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return attrs.asdict(self)


@attrs.frozen
class Decision:
    """What the caller must do about one classified failure."""

    error: VoiceBotError
    classification: Classification
    correlation_id: str
    reply: dict[str, Any]
    """The ``error`` message for the client (``reply_to`` included when the request had an id)."""
    close: tuple[int, str] | None
    """(close code, reason) when the connection must be closed, else None."""
    recovery: str | None
    """Name of the recovery action to run (MEDIUM errors), else None."""


#: Recovery for MEDIUM errors that name none: resynchronise the client, or let it retry later.
DEFAULT_RECOVERY: dict[Category, str] = {
    Category.PERSISTENCE: "retry_later", Category.PROVIDER: "retry_later", Category.RATE_LIMIT: "retry_later",
    Category.NETWORK: "resend_state", Category.SYSTEM: "resend_state", Category.SESSION: "resend_state",
    Category.LOBBY: "resend_state", Category.WEBSOCKET: "resend_state",
}

Listener = Callable[[ErrorRecord, VoiceBotError], None]
RecoveryAction = Callable[[Decision], Awaitable[None]]


class ErrorHandler:
    """Classifies, decides, counts, logs and notifies — the same way everywhere.

    Severity policy (see README "Severity"): LOW → reply; MEDIUM → reply + recovery action; HIGH → reply +
    close with the error's close code (1011 by default); CRITICAL → like HIGH and the error's subsystem is
    marked unhealthy until :meth:`mark_healthy`.
    """

    def __init__(
        self,
        *,
        ids: IdFactory | None = None,
        rate_window: float = 60.0,
        keep_last: int = 50,
        logger: logging.Logger | None = None,
    ) -> None:
        self.ids = ids if ids is not None else IdFactory()
        self._rate_window = rate_window
        self._times: collections.deque[float] = collections.deque()
        self._recent: collections.deque[ErrorRecord] = collections.deque(maxlen=keep_last)
        self._counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._closes: collections.Counter[int] = collections.Counter()
        self._recoveries: collections.Counter[str] = collections.Counter()
        self._unhealthy: dict[str, dict[str, Any]] = {}
        self._listeners: list[Listener] = []
        self._sources: dict[str, Callable[[], Any]] = {}
        self._log = logger if logger is not None else log
        self.total = 0

    # -- registration -------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(record, error)`` for every handled error (exceptions from it are logged, not raised)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop notifying ``listener``."""
        self._listeners.remove(listener)

    def add_source(self, name: str, snapshot: Callable[[], Any]) -> None:
        """Include ``snapshot()`` under ``name`` in :meth:`get_error_statistics` (e.g. breaker states)."""
        self._sources[name] = snapshot

    # -- handling -----------------------------------------------------------------------------------
    def capture(self, exc: BaseException, ctx: ErrorContext | RequestContext) -> Decision | None:
        """Handle the failure part of ``exc``; re-raise its Cancelled/KeyboardInterrupt/SystemExit part.

        Returns None when ``exc`` held nothing but control flow (in which case this call raises).
        """
        passthrough, failure = split_passthrough(exc)
        decision = self.handle(failure, ctx) if failure is not None else None
        if passthrough is not None:
            raise passthrough
        return decision

    def handle(self, exc: BaseException, ctx: ErrorContext | RequestContext) -> Decision:
        """Classify ``exc`` (which must contain no passthrough exception), count, log and decide."""
        classification = classify(exc)
        error = classification.error
        if isinstance(ctx, RequestContext):
            conn, cid, mtype, rid = ctx.connection, ctx.correlation_id, ctx.message_type, ctx.request_id
        else:
            conn, cid, mtype, rid = ctx, ctx.correlation_id, None, None
        now = _now()
        self._count(error, now)
        record = ErrorRecord(
            time=now, correlation_id=cid, code=error.code, category=str(error.category),
            severity=error.severity.label, message=error.message, peer_id=conn.peer_id, lobby_id=conn.lobby_id,
            message_type=mtype, component=conn.component, parts=len(classification.parts),
        )
        self._recent.append(record)
        self._log_error(record, error, classification)
        reply: dict[str, Any] = {"type": "error"}
        if rid is not None:
            reply["reply_to"] = rid
        reply.update(error.to_wire())
        reply["correlation_id"] = cid
        close: tuple[int, str] | None = None
        recovery: str | None = None
        if error.severity >= Severity.HIGH:
            close = (error.close_code or DEFAULT_CLOSE_CODE, _reason(error))
            self._closes[close[0]] += 1
            if error.severity is Severity.CRITICAL:
                self.mark_unhealthy(error.subsystem or str(error.category), error.code)
        elif error.severity is Severity.MEDIUM:
            recovery = error.recovery or DEFAULT_RECOVERY.get(error.category)
        for listener in list(self._listeners):
            try:
                listener(record, error)
            except Exception:
                self._log.exception("error listener %r failed", listener)
        return Decision(error, classification, cid, reply, close, recovery)

    async def recover(self, decision: Decision, actions: Mapping[str, RecoveryAction]) -> None:
        """Run the decision's recovery action from ``actions`` (counted; a missing one is counted and logged)."""
        name = decision.recovery
        if name is None:
            return
        action = actions.get(name)
        if action is None:
            self._recoveries[f"{name}:missing"] += 1
            self._log.warning("no recovery action %r (cid=%s)", name, decision.correlation_id)
            return
        self._recoveries[name] += 1
        await action(decision)

    def note_close(self, code: int) -> None:
        """Count a close decided outside :meth:`handle` (e.g. slow client, error budget)."""
        self._closes[code] += 1

    # -- health & statistics ------------------------------------------------------------------------
    def mark_unhealthy(self, subsystem: str, code: str) -> None:
        """Mark ``subsystem`` unhealthy (visible in statistics) until :meth:`mark_healthy`."""
        self._unhealthy[subsystem] = {"since": _now(), "code": code}
        self._log.critical("subsystem unhealthy subsystem=%s code=%s", subsystem, code)

    def mark_healthy(self, subsystem: str) -> None:
        """Clear an unhealthy mark."""
        self._unhealthy.pop(subsystem, None)

    @property
    def healthy(self) -> bool:
        """True when no subsystem is marked unhealthy."""
        return not self._unhealthy

    def rate(self) -> float:
        """Errors per second over the sliding window (Trio's clock)."""
        self._expire(_now())
        return len(self._times) / self._rate_window

    def get_error_statistics(self) -> dict[str, Any]:
        """A JSON-ready snapshot: totals, counts by category × severity × code, rate, recent errors, health."""
        by_category: dict[str, dict[str, dict[str, int]]] = {}
        for (category, severity, code), n in sorted(self._counts.items()):
            by_category.setdefault(category, {}).setdefault(severity, {})[code] = n
        by_severity: collections.Counter[str] = collections.Counter()
        for (_, severity, _), n in self._counts.items():
            by_severity[severity] += n
        snapshot: dict[str, Any] = {
            "total": self.total,
            "by_category": by_category,
            "by_severity": dict(sorted(by_severity.items())),
            "rate_per_second": self.rate(),
            "rate_window_seconds": self._rate_window,
            "closes": {str(code): n for code, n in sorted(self._closes.items())},
            "recoveries": dict(sorted(self._recoveries.items())),
            "unhealthy": {k: dict(v) for k, v in sorted(self._unhealthy.items())},
            "healthy": self.healthy,
            "recent": [r.as_dict() for r in self._recent],
        }
        for name, source in self._sources.items():
            snapshot[name] = source()
        return snapshot

    def count(self, code: str, category: Category | str | None = None) -> int:
        """How many errors with ``code`` (optionally only in ``category``) were handled."""
        return sum(n for (cat, _, c), n in self._counts.items() if c == code and (category is None or cat == category))

    # -- internals ----------------------------------------------------------------------------------
    def _count(self, error: VoiceBotError, now: float) -> None:
        self.total += 1
        self._counts[(str(error.category), error.severity.label, error.code)] += 1
        self._times.append(now)
        self._expire(now)

    def _expire(self, now: float) -> None:
        cutoff = now - self._rate_window
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()

    def _log_error(self, record: ErrorRecord, error: VoiceBotError, classification: Classification) -> None:
        level = {
            Severity.LOW: logging.INFO, Severity.MEDIUM: logging.WARNING,
            Severity.HIGH: logging.ERROR, Severity.CRITICAL: logging.CRITICAL,
        }[error.severity]
        if not self._log.isEnabledFor(level):
            return
        unknown = error.code == "internal_error" or error.severity >= Severity.HIGH
        cause = classification.originals[classification.parts.index(error)]
        self._log.log(
            level,
            "error cid=%s category=%s severity=%s code=%s peer=%s lobby=%s type=%s component=%s parts=%d msg=%r%s",
            record.correlation_id, record.category, record.severity, record.code, record.peer_id or "-",
            record.lobby_id or "-", record.message_type or "-", record.component, record.parts, error.message,
            f" detail={error.context!r}" if error.context else "",
            exc_info=(type(cause), cause, cause.__traceback__) if unknown else None,
        )


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside a Trio run (sync tests, shutdown printing)
        return 0.0


def _reason(error: VoiceBotError) -> str:
    # WebSocket close reasons are limited to 123 bytes.
    return error.message.encode()[:120].decode(errors="ignore")
