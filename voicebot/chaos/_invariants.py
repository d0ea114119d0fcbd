"""The chaos server (a :class:`~voicebot.server.Server` that checks routing as it happens) and state invariants.

Every check reports through :func:`voicebot.faults.invariant`, so a violation is journalled with its virtual
time and kept in the run's ``violations`` (the first one is what the CLI prints).
"""

from __future__ import annotations

import collections
from typing import Any

import attrs
import trio

from voicebot import faults
from voicebot.errors import RequestContext
from voicebot.hub import Action, Send
from voicebot.server import Connection, Server
from voicebot.testing._determinism import make_deterministic

__all__ = ["LOBBY_SCOPED", "ChaosServer", "SeedVerdict", "check_end", "check_error_accounting", "check_membership",
           "check_state"]


@attrs.frozen(kw_only=True)
class SeedVerdict:
    """The invariants one chaos seed violated (single-hub and multi-hub results both carry it)."""

    violations: tuple[str, ...]
    """Each violated invariant as ``name: fields``, in the order found."""

    @property
    def ok(self) -> bool:
        """True when no invariant was violated."""
        return not self.violations

    @property
    def first_violation(self) -> str | None:
        """The first violated invariant (``name: fields``), if any."""
        return self.violations[0] if self.violations else None

#: Messages that belong to one lobby: they may only reach members of that lobby.
LOBBY_SCOPED = frozenset({"chat", "signal", "peer.joined", "peer.left"})


class ChaosServer(Server):
    """A server that checks every lobby-scoped delivery against the hub's membership and counts its streams."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        make_deterministic(self)
        self.streams_started = 0
        self.streams_finished = 0
        self.seen: dict[int, Connection] = {}
        self.closed_counts: collections.Counter[int] = collections.Counter()
        self.close_hooks.append(self._on_closed)

    def _on_closed(self, conn: Connection) -> None:
        self.closed_counts[conn.id] += 1
        self.seen[conn.id] = conn

    async def handle_stream(self, stream: trio.abc.Stream, remote: str, *, trusted: bool = False) -> None:
        """Count the stream's start and end around the real handler."""
        self.streams_started += 1
        try:
            await super().handle_stream(stream, remote, trusted=trusted)
        finally:
            self.streams_finished += 1

    def apply(self, actions: list[Action], rctx: RequestContext | None = None) -> None:
        """Check lobby-scoped sends (sender and every receiver inside the message's lobby), then apply.

        A resume (a ``welcome`` among the actions) flushes messages buffered during the grace: their sender
        was checked when they were sent and may have moved on since, so only the receiver is checked.
        """
        resume = any(isinstance(a, Send) and a.message.get("type") == "welcome" for a in actions)
        for action in actions:
            if isinstance(action, Send) and action.message.get("type") in LOBBY_SCOPED:
                self._check_send(action, check_sender=not resume)
        for conn in self.connections.values():
            self.seen.setdefault(conn.id, conn)
        super().apply(actions, rctx)

    def _check_send(self, action: Send, *, check_sender: bool) -> None:
        message = action.message
        lobby_id = message.get("lobby_id")
        sender = message.get("from")
        if sender is not None and check_sender:
            session = self.hub.sessions.get(sender)
            faults.invariant(
                session is not None and session.lobby_id == lobby_id, "sender_in_lobby",
                type=message.get("type"), sender=sender, lobby=lobby_id,
                sender_lobby=session.lobby_id if session is not None else None,
            )
        for conn in action.conns:
            session = self.hub.session_of(conn)
            faults.invariant(
                session is not None and session.lobby_id == lobby_id, "delivery_within_lobby",
                type=message.get("type"), conn=conn, lobby=lobby_id, sender=sender,
                receiver=session.peer_id if session is not None else None,
                receiver_lobby=session.lobby_id if session is not None else None,
            )


def check_membership(server: Server, *, slack: float = 0.0, **where: Any) -> None:
    """Lobby membership matches sessions, and every session homed on this hub is live or in its resume grace.

    The invariants ``member_has_session``, ``session_in_its_lobby`` and ``session_live_or_in_grace``, shared by the
    single-hub and the multi-hub workloads. Sessions homed on another hub (a cluster mirror: ``home`` set) are
    that hub's to keep alive, so only their lobby placement is checked here. ``slack`` extends the grace for a
    real-clock expiry loop that runs a little after a deadline passes; ``where`` (e.g. ``hub=1``) is added to
    every violation's fields."""
    hub = server.hub
    now = trio.current_time()
    for lobby in hub.lobbies.values():
        for pid in lobby.members:
            session = hub.sessions.get(pid)
            faults.invariant(session is not None and session.lobby_id == lobby.id, "member_has_session",
                             **where, lobby=lobby.id, peer=pid, session_lobby=session.lobby_id if session else None)
    for session in hub.sessions.values():
        if session.home is None:
            live = session.conn is not None and session.conn in server.connections
            in_grace = (session.conn is None and session.grace_deadline is not None
                        and session.grace_deadline + slack > now)
            faults.invariant(live or in_grace, "session_live_or_in_grace", **where, peer=session.peer_id,
                             conn=session.conn, grace_deadline=session.grace_deadline)
        if session.lobby_id is not None:
            own = hub.lobbies.get(session.lobby_id)
            faults.invariant(own is not None and session.peer_id in own.members, "session_in_its_lobby",
                             **where, peer=session.peer_id, lobby=session.lobby_id)


def check_state(server: Server) -> None:
    """The single hub's state when idle: :func:`check_membership`; non-persistent empty lobbies are on their way
    out; no breaker lets more half-open probes through than it permits; each connection is bound to one session."""
    check_membership(server)
    for lobby in server.hub.lobbies.values():
        if not lobby.persistent:
            faults.invariant(bool(lobby.members) or lobby.empty_since is not None, "empty_lobby_expires",
                             lobby=lobby.id)
    registry = getattr(server, "breakers", None)
    if registry is not None:
        for name in registry.snapshot():
            breaker = registry.get(name)
            in_flight = breaker.metrics().get("half_open_probes_in_flight", 0)
            faults.invariant(in_flight <= breaker.config.permitted_calls_in_half_open, "breaker_half_open_permits",
                             breaker=name, in_flight=in_flight, permits=breaker.config.permitted_calls_in_half_open)
    for conn_id in server.connections:
        session = server.hub.session_of(conn_id)
        faults.invariant(session is None or session.conn == conn_id, "connection_bound_once",
                         conn=conn_id, session_conn=session.conn if session else None)


def check_end(server: ChaosServer, tasks_before: int, tasks_after: int) -> None:
    """After shutdown: every stream handler and connection nursery exited, once; no task outlived its owner."""
    faults.invariant(server.stopped.is_set(), "server_stopped")
    faults.invariant(not server.connections, "connections_closed", left=sorted(server.connections))
    faults.invariant(server.streams_started == server.streams_finished, "stream_handlers_exit",
                     started=server.streams_started, finished=server.streams_finished)
    for conn_id, conn in sorted(server.seen.items()):
        faults.invariant(conn.finished.is_set(), "connection_nursery_exits", conn=conn_id)
        faults.invariant(server.closed_counts[conn_id] == 1, "connection_closed_once", conn=conn_id,
                         times=server.closed_counts[conn_id])
    faults.invariant(tasks_after <= tasks_before, "no_task_outlives_owner", before=tasks_before, after=tasks_after)


def check_error_accounting(server: Server, run: faults.FaultRun) -> None:
    """The error statistics add up to the journal: same total and the same count for every code."""
    journal_codes: collections.Counter[str] = collections.Counter()
    for _, kind, fields in run.journal.entries():
        if kind == "error":
            journal_codes[str(fields.get("code"))] += 1
    stats = server.errors.get_error_statistics()
    stat_codes: collections.Counter[str] = collections.Counter()
    for severities in stats["by_category"].values():
        for codes in severities.values():
            for code, n in codes.items():
                stat_codes[code] += n
    faults.invariant(stats["total"] == sum(journal_codes.values()), "error_total_matches_journal",
                     statistics=stats["total"], journal=sum(journal_codes.values()))
    faults.invariant(stat_codes == journal_codes, "error_codes_match_journal",
                     statistics=dict(sorted(stat_codes.items())), journal=dict(sorted(journal_codes.items())))
