"""The server's durable side: the guarded store, the registered-names cache, restore, background writes.

Writes go through ``RetryStrategy`` around a ``CircuitBreaker`` named ``persistence``; when the database is
unavailable the operations that need it fail with a retryable PersistenceError (``circuit_open`` once the
breaker opens) and everything else keeps working. Registered names are cached in memory so hello keeps
working while the database is down. Writes that confirm nothing to a client (audit rows, session sync)
run from a bounded job queue in order; when it is full a job is dropped and counted (visible in stats).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from ..auth import name_key
from ..auth._names import name_skeletons
from ..errors import ErrorContext, ErrorHandler, PersistenceError, SessionError, VoiceBotError
from ..hub import Hub, Lobby, Membership, NewLobby, Notice, Session, SessionGone
from ..resilience import BreakerConfig, BreakerRegistry, CircuitState, RetryStrategy
from ..store import NameRecord, SessionRecord, Store, open_database, redact_url

__all__ = ["Persistence"]

log = logging.getLogger("voicebot.persistence")

T = TypeVar("T")
Job = Callable[[], Awaitable[object]]

#: Hub notices written to the audit log, by audit event name.
_AUDITED = {"lobby.joined": "join", "lobby.left": "leave", "lobby.created": "lobby_create",
            "lobby.deleted": "lobby_delete"}

#: While connected, a stored session stays valid this long (refreshed on every save).
CONNECTED_TTL = 24 * 3600.0
JOB_QUEUE = 4096
#: Attempts (backoff 1, 2, 4, 8 s) to store one security audit row before it is logged at ERROR instead.
SECURITY_ATTEMPTS = 5


class Persistence:
    """Owns the store for one server. ``async with persistence.open(): ...`` then ``run_jobs`` in a nursery."""

    def __init__(
        self, path: str, errors: ErrorHandler, breakers: BreakerRegistry, rng: random.Random,
        *, resume_grace: float, wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.errors = errors
        self.breaker = breakers.get("persistence", BreakerConfig(
            failure_rate_threshold=50.0, minimum_number_of_calls=5, sliding_window_size=10,
            wait_duration_in_open_state=5.0, open_wait_multiplier=2.0, max_wait_duration_in_open_state=60.0,
            permitted_calls_in_half_open=2, call_timeout=10.0,
        ))
        self.retry = RetryStrategy(3, base_delay=0.05, max_delay=0.5, deadline=5.0, rng=rng, name="persistence")
        self.resume_grace = resume_grace
        self.security_wait = 5.0
        """Default seconds :meth:`audit_security` waits for room (the server sets it from ``audit_wait``)."""
        self.wall_clock = wall_clock
        self.store: Store | None = None
        self.names: dict[str, NameRecord] = {}
        self._skeletons: dict[str, NameRecord] = {}
        self.dropped_jobs = 0
        self.audit_waits = 0
        """Security audit rows that had to wait for room in the job queue (back-pressure)."""
        self.audit_overflows = 0
        """Security audit rows that still found no room after waiting (logged at ERROR with all fields)."""
        self.failed_jobs = 0
        self._jobs_send, self._jobs_recv = trio.open_memory_channel[Job](JOB_QUEUE)
        self._ctx = ErrorContext(errors.ids.new(), component="persistence")

    async def guard(self, operation: Callable[[], Awaitable[T]]) -> T:
        """The store's write/read guard: retry (retryable errors, honouring ``retry_after``) around the breaker."""
        return await self.retry.call(self.breaker.call, operation)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Store]:
        """Open the store (PostgreSQL for a ``postgresql://`` URL, else SQLite); closed (shielded, bounded) on exit."""
        async with open_database(self.path, guard=self.guard, now=self._wall_now) as store:
            self.store = store
            try:
                yield store
            finally:
                self.store = None

    def _wall_now(self) -> float:
        # Looked up on every call, so replacing ``wall_clock`` (tests) also moves the store's timestamps.
        return self.wall_clock()

    def require(self) -> Store:
        """The open store (raises RuntimeError when used outside :meth:`open`)."""
        if self.store is None:
            raise RuntimeError("persistence is not open")
        return self.store

    async def restore(self, hub: Hub, now: float, *, sessions: bool = True) -> tuple[int, int]:
        """Load registered names, persistent lobbies and (unless not ``sessions``) resumable sessions into
        ``hub``; returns counts. Cluster mode skips sessions: the shared database holds every hub's, and the
        cluster's own records (in Redis) let them resume on any hub instead."""
        store = self.require()
        lobbies = await store.list_lobbies(persistent_only=True)
        for rec in lobbies:
            hub.add_lobby(Lobby(rec.id, rec.name, rec.private, rec.password_hash, rec.max_members,
                                persistent=True, created=rec.created), now)
        wall = self.wall_clock()
        await store.purge_expired(wall)
        stored = await store.list_sessions(now=wall) if sessions else []
        for srec in stored:
            remaining = self.resume_grace if srec.disconnected_at is None else srec.expires_at - wall
            if remaining <= 0:
                continue
            hub.restore_session(Session(srec.peer_id, srec.name or srec.peer_id, srec.kind, srec.resume_token_hash,
                                        None, lobby_id=srec.lobby_id, session_id=srec.session_id),
                                now + min(remaining, self.resume_grace))
        return len(lobbies), len(stored)

    async def load_names(self) -> None:
        """Fill the names cache from the store."""
        store = self.require()
        self.names = {rec.key: rec for rec in await store.list_names()}
        self._skeletons = {sk: rec for rec in self.names.values() for sk in name_skeletons(rec.name)}

    def name_by_skeleton(self, skeletons: frozenset[str]) -> NameRecord | None:
        """A registered name sharing one of ``skeletons`` (see ``voicebot.auth.name_skeletons``), if any."""
        return next((rec for sk in skeletons if (rec := self._skeletons.get(sk)) is not None), None)

    def name_record(self, name: str) -> NameRecord | None:
        """The registration of ``name`` (case-insensitive), from the cache."""
        return self.names.get(name_key(name))

    async def register_name(self, name: str, password_hash: str) -> NameRecord:
        """Register (committed before returning) and cache."""
        record = await self.require().register_name(name, password_hash)
        self.remember_name(record)
        return record

    def remember_name(self, record: NameRecord) -> None:
        """Cache a registration (one made here, or one another hub announced)."""
        self.names[record.key] = record
        for skeleton in name_skeletons(record.name):
            self._skeletons.setdefault(skeleton, record)

    async def learn_name(self, name: str) -> None:
        """Read a registration another hub made from the shared store into the cache (best effort: while the
        store is unreachable it is learnt at the next start)."""
        store = self.store
        if store is None:
            return
        try:
            record = await store.get_name_record(name)
        except VoiceBotError as exc:
            self.errors.handle(exc, ErrorContext(self.errors.ids.new(), component="persistence"))
            return
        if record is not None:
            self.remember_name(record)

    def session_record(
        self, hub: Hub, session: Session, *, connected: bool, joining: str | None = None
    ) -> SessionRecord:
        """The stored form of ``session`` (only persistent lobbies are remembered across restarts); ``joining``
        names a lobby it is about to join, stored instead of its current one."""
        lobby_id = joining if joining is not None else session.lobby_id
        lobby = hub.lobbies.get(lobby_id) if lobby_id else None
        wall = self.wall_clock()
        return SessionRecord(
            session_id=session.session_id, peer_id=session.peer_id, name=session.name,
            lobby_id=lobby.id if lobby is not None and lobby.persistent else None,
            resume_token_hash=session.token_hash, kind=session.kind,
            disconnected_at=None if connected else wall,
            expires_at=wall + (CONNECTED_TTL if connected else self.resume_grace),
        )

    async def save_session(self, hub: Hub, session: Session, ctx: ErrorContext) -> None:
        """Store a connected session now (best effort: a failure is classified and counted under ``ctx``)."""
        store = self.store
        if store is None:
            return
        try:
            await store.save_session(self.session_record(hub, session, connected=True))
        except VoiceBotError as exc:
            self.errors.handle(exc, ctx)

    async def persist(self, hub: Hub, record: NewLobby | Membership) -> None:
        """Commit the hub's ``Persist`` record before its acknowledgement (raises PersistenceError when the store
        cannot: the request fails and nothing of it happened)."""
        store = self.require()
        if isinstance(record, NewLobby):
            lobby = record.lobby
            await store.create_lobby(lobby.id, lobby.name, max_members=lobby.max_members, private=lobby.private,
                                     password_hash=lobby.password_hash, persistent=True)
            return
        session = hub.sessions.get(record.peer_id)
        if session is None:  # ended while its join waited for its turn: the join fails with it
            raise SessionError("the session ended", code="hello_required")
        await store.save_session(self.session_record(hub, session, connected=True, joining=record.lobby_id))

    def session_changed(self, hub: Hub, session: Session) -> None:
        """Queue the save of a session whose stored form changed outside a request, e.g. it entered its resume grace
        (expiry = now + grace): best effort, in order."""
        store = self.store
        if store is not None:
            record = self.session_record(hub, session, connected=session.conn is not None)
            self.submit(lambda: store.save_session(record))

    def on_notice(self, action: Notice | SessionGone) -> None:
        """Hub notice listener: delete ended sessions, and audit joins, leaves and lobby changes."""
        store = self.store
        if store is None:
            return
        if isinstance(action, SessionGone):
            if action.session_id:
                self.submit(lambda: store.delete_session(action.session_id))
            self.audit("disconnect", peer_id=action.peer_id, reason=action.reason)
        elif action.event in _AUDITED:
            self.audit(_AUDITED[action.event], peer_id=action.fields.get("peer_id"),
                       **{k: v for k, v in action.fields.items() if k != "peer_id"})

    # -- background jobs ----------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a write that confirms nothing to a client; when the queue is full it is dropped and counted."""
        try:
            self._jobs_send.send_nowait(job)
        except trio.WouldBlock:
            self.dropped_jobs += 1
            log.warning("persistence job queue full (%d): job dropped", JOB_QUEUE)

    def audit(self, event: str, *, peer_id: str | None = None, name: str | None = None, remote: str | None = None,
              correlation_id: str | None = None, **detail: Any) -> None:
        """Queue an audit row."""
        store = self.store
        if store is None:
            return
        self.submit(lambda: store.append_audit(event, peer_id=peer_id, name=name, remote=remote,
                                               correlation_id=correlation_id, detail=detail or None))

    async def audit_security(self, event: str, *, peer_id: str | None = None, name: str | None = None,
                             remote: str | None = None, correlation_id: str | None = None, wait: float | None = None,
                             **detail: Any) -> None:
        """Queue the audit row of a security event (failed logins, lockouts, admin actions, registrations).

        Never dropped: when the job queue is full the caller waits (up to ``wait``, default
        ``security_wait``) for room, so a flood slows its own requests instead of losing rows, and a write that
        fails (busy or briefly unavailable store) is retried :data:`SECURITY_ATTEMPTS` times with backoff. If there
        is still no room, or every attempt failed, the row is logged at ERROR level with every field (so it survives
        in the log) and counted in ``audit_overflows``; no room also raises ``audit_busy`` (retryable) to fail the
        request that caused it.
        """
        store = self.store
        if store is None:
            return

        async def job() -> None:
            for attempt in range(SECURITY_ATTEMPTS):  # a busy or briefly failing store must not lose the row
                try:
                    await store.append_audit(event, peer_id=peer_id, name=name, remote=remote,
                                             correlation_id=correlation_id, detail=detail or None)
                    return
                except Exception:
                    if attempt == SECURITY_ATTEMPTS - 1:
                        self.audit_overflows += 1
                        log.error("security audit row not stored after %d attempts: event=%s peer_id=%s name=%s "
                                  "remote=%s cid=%s %s", SECURITY_ATTEMPTS, event, peer_id, name, remote,
                                  correlation_id, detail)
                        raise
                    await trio.sleep(min(2.0**attempt, 10.0))

        try:
            self._jobs_send.send_nowait(job)
            return
        except trio.WouldBlock:
            self.audit_waits += 1
        with trio.move_on_after(self.security_wait if wait is None else wait):
            await self._jobs_send.send(job)
            return
        self.audit_overflows += 1
        log.error("audit queue full: security event not stored: event=%s peer_id=%s name=%s remote=%s cid=%s %s",
                  event, peer_id, name, remote, correlation_id, detail)
        raise PersistenceError("the audit log is busy; try again shortly", code="audit_busy", retryable=True,
                               retry_after=1.0)

    async def run_jobs(self) -> None:
        """Run queued jobs in order until cancelled; each failure is classified and counted, never fatal."""
        async for job in self._jobs_recv:
            try:
                await job()
            except Exception as exc:
                self.failed_jobs += 1
                self.errors.handle(exc, self._ctx)

    async def janitor(self, *, interval: float, audit_retention: float, hub: Hub | None = None) -> None:
        """Every ``interval`` seconds: refresh the stored rows of ``hub``'s connected sessions that have less than
        half of ``CONNECTED_TTL`` left (a session is saved at hello, join and leave, not per message, so a long call
        must not age out of the store and lose its resume across a restart), then delete expired session rows and
        audit rows older than ``audit_retention`` seconds (0 keeps the audit log forever). Failures are
        classified and counted; the loop goes on."""
        while True:
            await trio.sleep(interval)
            store = self.store
            if store is None:
                continue
            wall = self.wall_clock()
            try:
                if hub is not None:
                    for row in await store.list_sessions(now=wall):
                        session = hub.sessions.get(row.peer_id)
                        if (row.disconnected_at is None and row.expires_at < wall + CONNECTED_TTL / 2
                                and session is not None and session.conn is not None):
                            await store.save_session(self.session_record(hub, session, connected=True))
                sessions = await store.purge_expired(wall)
                audits = await store.prune_audit(wall - audit_retention) if audit_retention > 0 else 0
            except Exception as exc:
                self.failed_jobs += 1
                self.errors.handle(exc, self._ctx)
                continue
            if sessions or audits:
                log.info("janitor: removed %d expired sessions and %d audit rows", sessions, audits)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until the queued jobs have run; used at shutdown."""
        done = trio.Event()

        async def mark() -> None:
            done.set()

        self.submit(mark)
        with trio.move_on_after(timeout):
            await done.wait()

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready persistence health for statistics."""
        state = self.breaker.state
        return {
            "path": redact_url(self.path), "open": self.store is not None, "breaker": str(state),
            "degraded": state is not CircuitState.CLOSED and state is not CircuitState.DISABLED,
            "queued_jobs": self._jobs_recv.statistics().current_buffer_used,
            "dropped_jobs": self.dropped_jobs, "failed_jobs": self.failed_jobs,
            "audit_waits": self.audit_waits, "audit_overflows": self.audit_overflows,
            "registered_names": len(self.names),
        }
