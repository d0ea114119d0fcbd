"""The chaos run's persistence side: hub notices written to a SQLite audit log through a circuit breaker.

It exercises the ``store.write``/``store.read`` points (in ``SQLiteStore``'s chokepoints), the breaker's
state machine and the two persistence invariants: every acknowledged write is readable, and the breaker
never admits more calls in HALF_OPEN than its permits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from voicebot import faults
from voicebot.errors import ErrorContext, VoiceBotError
from voicebot.hub import Notice, SessionGone
from voicebot.resilience import BreakerEvent, BreakerEventKind, CircuitBreaker, CircuitState
from voicebot.server import Server
from voicebot.store import SQLiteStore
from voicebot.store._conn import open_connections
from voicebot.testing import EPOCH

__all__ = ["AuditRecorder", "journal_breaker_event"]

T = TypeVar("T")

#: Half-open probe permits of the chaos breaker.
HALF_OPEN_PERMITS = 2


def journal_breaker_event(event: BreakerEvent) -> None:
    """Breaker listener: journal state transitions and resets (no-op without an active fault run)."""
    if event.kind is BreakerEventKind.STATE_TRANSITION:
        faults.record("breaker", breaker=event.breaker, from_state=event.from_state, to_state=event.to_state)
    elif event.kind is BreakerEventKind.RESET:
        faults.record("breaker", breaker=event.breaker, reset=True, to_state=event.state)


class AuditRecorder:
    """Queues the server's notices and writes them (a few at a time, concurrently) when the workload says so."""

    def __init__(self, store: SQLiteStore, breaker: CircuitBreaker) -> None:
        self.server: Server | None = None
        self.store = store
        self.breaker = breaker
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.acked: list[tuple[int, str]] = []
        """(audit id, event) of every write whose call returned (i.e. was acknowledged as committed)."""
        self.half_open_admitted = 0
        self.half_open_peak = 0
        breaker.add_listener(journal_breaker_event)
        breaker.add_listener(self._on_breaker)

    def attach(self, server: Server) -> None:
        """Record ``server``'s notices from now on (and count store failures in its error statistics)."""
        self.server = server
        server.notice_listeners.append(self._on_notice)

    @classmethod
    def open(cls) -> AuditRecorder:
        """Open a ``:memory:`` store (synchronously: no worker thread, so no virtual-time leap) and a breaker.

        A ``:memory:`` store runs its statements on the event loop, which keeps the run deterministic.
        """
        breaker = CircuitBreaker(
            "store", failure_threshold=3, recovery_timeout=4.0, call_timeout=2.0,
            permitted_calls_in_half_open=HALF_OPEN_PERMITS,
        )
        recorder: AuditRecorder | None = None

        async def guard(attempt: Callable[[], Awaitable[T]]) -> T:
            assert recorder is not None
            return await recorder._guard(attempt)

        writer, reader = open_connections(":memory:", 5.0, "FULL")
        store = SQLiteStore(writer, reader, path=":memory:", now=lambda: EPOCH + trio.current_time(), guard=guard,
                            read_guard=guard, lock_timeout=10.0, close_timeout=10.0)
        recorder = cls(store, breaker)
        return recorder

    def _on_notice(self, action: Notice | SessionGone) -> None:
        if isinstance(action, Notice):
            self.pending.append((action.event, dict(action.fields)))
        else:
            self.pending.append(("session.gone", {"peer_id": action.peer_id, "reason": action.reason}))

    def _on_breaker(self, event: BreakerEvent) -> None:
        if event.kind is BreakerEventKind.STATE_TRANSITION and event.to_state is CircuitState.HALF_OPEN:
            self.half_open_admitted = 0

    async def _guard(self, attempt: Callable[[], Awaitable[T]]) -> T:
        async with self.breaker.guard():
            if self.breaker.core.last_state is CircuitState.HALF_OPEN:
                self.half_open_admitted += 1
                self.half_open_peak = max(self.half_open_peak, self.half_open_admitted)
                faults.invariant(
                    self.half_open_admitted <= HALF_OPEN_PERMITS, "breaker_half_open_permits",
                    admitted=self.half_open_admitted, permits=HALF_OPEN_PERMITS,
                )
            return await attempt()

    def _failed(self, exc: VoiceBotError, operation: str) -> None:
        assert self.server is not None, "attach() a server first"
        ctx = ErrorContext(self.server.errors.ids.new(), component="store")
        self.server.errors.handle(exc, ctx.request(operation))

    async def flush(self, limit: int = 3) -> None:
        """Write up to ``limit`` queued notices concurrently; failures are handled (counted), not raised."""
        batch, self.pending = self.pending[:limit], self.pending[limit:]
        async with trio.open_nursery() as nursery:
            for event, detail in batch:
                nursery.start_soon(self._write_one, event, detail)

    async def _write_one(self, event: str, detail: dict[str, Any]) -> None:
        try:
            entry_id = await self.store.append_audit(event, peer_id=detail.get("peer_id"), detail=detail)
        except VoiceBotError as exc:
            self._failed(exc, "append_audit")
            return
        self.acked.append((entry_id, event))
        faults.record("store.ack", id=entry_id, event=event)

    async def verify(self, *, final: bool = False) -> None:
        """Read the audit log back and check every acknowledged write is there (``final``: faults off)."""
        if final:
            self.breaker.reset()
            with faults.activate(faults.Plan(name="quiet")):  # the final read must not be failed by the plan
                entries = await self.store.list_audit(limit=1000)
        else:
            try:
                entries = await self.store.list_audit(limit=1000)
            except VoiceBotError as exc:
                self._failed(exc, "list_audit")
                return
        stored = {entry.id: entry.event for entry in entries}
        for entry_id, event in self.acked:
            faults.invariant(stored.get(entry_id) == event, "acked_write_readable", id=entry_id, event=event,
                             found=stored.get(entry_id))

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.aclose()
