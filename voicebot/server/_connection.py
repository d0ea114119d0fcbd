"""One client WebSocket: reader and writer (bounded outbox) in the connection's own nursery.

A message for a connection whose socket is idle (nothing queued, held or being written) is framed and written
straight from the sending task; otherwise it is queued, and a writer task runs only while the outbox holds
something (see :mod:`._outbox`): an idle connection holds no writer task and no outbox.

The heartbeat is the server's shared timer (:class:`~voicebot.server._heartbeat.Heartbeats`): it reads when
bytes last arrived and has a ping frame written here, straight to the socket when nothing else is being written.
Every failure in any of these tasks goes through the server's ErrorHandler; none escapes to the server or to other
connections. Closing is decided once (first decision wins), flushed when possible, and carried out shielded with
a deadline.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio
import trio_websocket

from .. import faults, protocol
from ..auth import address_key
from ..errors import Decision, ErrorBudget, ErrorContext, RateLimitError, RequestContext, VoiceBotError
from ._auth import client_host
from ._backpressure import CLOSE_POLICY
from ._batching import BatchingStream
from ._outbox import Closing, OutboxWriting
from ._pinging import CLOSE_HEARTBEAT, PingSending
from ._ratelimit import TokenBucket
from ._wsclose import answer_protocol_errors
from ._wslean import SET_EVENT, release_handshake

if TYPE_CHECKING:
    from ._hosts import ConnectionHost

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_HEARTBEAT", "CLOSE_HELLO_TIMEOUT", "CLOSE_POLICY", "Connection"]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_ABNORMAL = 1006
CLOSE_HELLO_TIMEOUT = 4003
#: Slow requests (handlers added with ``concurrent=True``) one connection may have running at once.
MAX_IN_FLIGHT = 4


class Connection(PingSending, OutboxWriting):
    """A client connection; created and run by :class:`~voicebot.server.Server`."""

    # Slots: a server holds thousands of these; an instance dict would cost about 1 KiB each.
    __slots__ = ("_batch", "_broken", "_done", "_finished", "_nursery", "_scope", "address", "bucket", "budget",
                 "close_decision", "ctx", "greeted", "id", "in_flight", "quota_slot", "remote", "server", "ws")

    def __init__(
        self, server: ConnectionHost, ws: trio_websocket.WebSocketConnection, conn_id: int, remote: str,
        batch: BatchingStream, *, trusted: bool = False,
    ) -> None:
        self.server = server
        self.ws = ws
        self._batch = batch
        """The stream under ``ws``: the writer batches frames into one write through it; the heartbeat reads when
        bytes last arrived and writes pings through it (see :mod:`._batching`)."""
        self.id = conn_id
        self.remote = remote
        settings = server.settings
        self._outbox: deque[tuple[str, int] | Closing] | None = None
        """Messages to send (at most ``outbox_size``); None while empty and no writer runs."""
        self.writing = False
        """True while the writer task runs (from the first queued message until the outbox is empty)."""
        self._ended = False
        """Nothing more is queued or sent: the close frame is next (or the connection finished)."""
        self.out_bytes = 0
        """UTF-8 bytes queued in the outbox (bounded by ``settings.outbox_bytes``)."""
        self.address = f"{remote}#{conn_id}" if trusted else address_key(client_host(remote))
        """The address key the connection's outbox bytes count against (see ``voicebot.server._backpressure``); a
        trusted connection of the process's own (the in-process worker's) is a budget of its own, so that one bot's
        slow connection never pauses the others."""
        self.paused = False
        """True while the reader waits for outboxes to drain (back-pressure)."""
        self.quota_slot = not trusted
        """Whether the connection counts against its address's connection quotas (admitted over the network and
        not yet proven a worker, see :meth:`spare_worker`); the server releases the slot when it ends."""
        self.ctx = ErrorContext(server.errors.ids.new(), remote=remote)
        self.budget = ErrorBudget(settings.error_limit, settings.error_window)
        self.bucket = TokenBucket(settings.request_rate, settings.request_burst, trio.current_time())
        self.close_decision: tuple[int, str] | None = None
        self.greeted = trio.Event()
        """Set by the server once the client's hello was accepted (then replaced by a shared, set event)."""
        self._finished: trio.Event | None = None
        self._done = False
        self._scope = trio.CancelScope()
        """Cancelled to end the connection: until :meth:`run` opens the connection's nursery a scope of its own (a
        cancel made then is carried over), from then on the nursery's (one scope fewer per idle connection)."""
        self._send_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self.in_flight = 0
        self._broken = False
        answer_protocol_errors(ws)  # bad frames get their close code (1002/1007), not a silent TCP drop
        if release_handshake(ws):  # the HTTP handshake's state is not kept for the connection's life
            batch.ws = ws  # and heartbeat pongs are noted by the stream, not parsed (see _wslean.is_lone_pong)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until it closes; always ends with a (bounded) close handshake."""
        try:
            async with trio.open_nursery() as nursery:
                if self._scope.cancel_called:
                    nursery.cancel_scope.cancel()
                self._scope = nursery.cancel_scope
                self._nursery = nursery
                if self._outbox:
                    self._start_writer()
                nursery.start_soon(self._hello_deadline)
                self.server.heartbeats.start(self)
                try:
                    await self._reader()  # not through _guarded: one coroutine frame fewer while it waits
                except BaseException as exc:
                    self._failed("reader", exc)
                finally:
                    self._nursery = None  # closed to new tasks from here on
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            await self._finish()

    @property
    def finished(self) -> trio.Event:
        """Set once the connection has ended and the server was told (made when first asked for: most
        connections are never waited for)."""
        if self._finished is None:
            self._finished = trio.Event()
            if self._done:
                self._finished.set()
        return self._finished

    def request_close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Decide to close with ``code``; with ``flush`` the queued messages go out first (bounded)."""
        if self.close_decision is not None:
            return
        self.close_decision = (code, reason)
        if flush and self._put(Closing.CLOSE):
            return
        if self._send_scope is not None:  # let the frame in flight finish, but only briefly
            self._send_scope.deadline = min(
                self._send_scope.deadline, trio.current_time() + self.server.close_timeout
            )
        self._scope.cancel()

    def drop(self) -> None:
        """End the connection abruptly, like a network drop: no reply, no close frame; the session enters grace."""
        if self.close_decision is None:
            self.close_decision = (CLOSE_ABNORMAL, "connection dropped")
        self._broken = True
        self._scope.cancel()

    def send_cut(self, timeout: float) -> None:
        """A write made no progress within ``timeout`` and was cut mid-frame: the stream is unusable (no close
        frame can follow), so the connection closes 4002 without flushing."""
        self._broken = True
        self.request_close(CLOSE_HEARTBEAT, f"send timeout: no progress in {timeout:g} s", flush=False)

    def spare_worker(self) -> None:
        """The connection proved the worker token: it stops counting against its address's connection quotas
        (remote workers behind one address run many bots, each on a connection of its own)."""
        if self.quota_slot:
            self.quota_slot = False
            self.server.quotas.spare_worker(client_host(self.remote))

    def run_concurrently(self, body: Callable[[], Awaitable[None]], rctx: RequestContext) -> None:
        """Run a slow request (e.g. ``bot.add``) beside the reader, so the client's next requests are not held up.

        It runs in this connection's nursery (cancelled when the connection ends) and its errors get the same
        handling as any request's. At most :data:`MAX_IN_FLIGHT` run at once per connection (``rate_limited``).
        """
        if self._nursery is None:
            raise RuntimeError("connection is not running")
        if self.in_flight >= MAX_IN_FLIGHT:
            raise RateLimitError(f"at most {MAX_IN_FLIGHT} slow requests at once; wait for a reply",
                                 code="rate_limited", retry_after=1.0)
        self.in_flight += 1
        self._nursery.start_soon(self._run_request, body, rctx)

    async def _run_request(self, body: Callable[[], Awaitable[None]], rctx: RequestContext) -> None:
        try:
            await body()
        except BaseException as exc:
            decision = self.server.errors.capture(exc, rctx)
            if decision is not None:
                await self.apply_decision(decision)
        finally:
            self.in_flight -= 1
            self.sync_context()

    # -- tasks --------------------------------------------------------------------------------------
    async def _guarded(self, component: str, body: Any) -> None:
        try:
            await body()
        except BaseException as exc:
            self._failed(component, exc)

    def _failed(self, component: str, exc: BaseException) -> None:
        """``component``'s task ended with ``exc``: the peer went away, a fault dropped it, or an error to handle
        (reply, then close); Cancelled and KeyboardInterrupt are re-raised (by ``errors.capture``)."""
        if isinstance(exc, trio_websocket.ConnectionClosed):
            self._scope.cancel()  # the peer went away: the normal end of a connection, not an error
        elif isinstance(exc, faults.Disconnect):
            self.drop()
        else:
            decision = self.server.errors.capture(exc, attrs.evolve(self.ctx, component=component))
            if decision is not None:
                code, reason = decision.close or (CLOSE_INTERNAL, decision.error.message[:120])
                self.server.counters.count_sent("error")
                self.enqueue(protocol.encode(decision.reply))
                self.request_close(code, reason, flush=component != "writer")

    async def _reader(self) -> None:
        while True:
            await self._wait_for_room()
            text = await self.ws.get_message()
            if faults.current_run() is None:  # no fault plan: the frame as received (no list, no keywords)
                await self._on_frame(text)
            else:
                for frame in faults.message("ws.recv", text, conn=self.id):  # may drop/duplicate/corrupt
                    await self._on_frame(frame)
            if self.close_decision is not None:
                return

    async def _on_frame(self, text: str | bytes) -> None:
        started = time.perf_counter()
        rctx: RequestContext | None = None
        try:
            envelope = protocol.decode(text, self.server.request_types)
            rctx = self.ctx.request(envelope.type, envelope.id)
            now = trio.current_time()
            wait = self.bucket.take(now)
            if wait is None:  # the address's shared budget: many connections from one address share it
                wait = self.server.quotas.take_request(self.remote, now)
            if wait is not None:
                raise RateLimitError(f"too many requests; slow down (retry in {wait:.2f} s)", code="rate_limited",
                                     retry_after=round(wait, 3))
            request = protocol.validate(envelope, self.server.request_types)
            await self.server.dispatch(self, request, rctx)
        except faults.Disconnect:
            self.drop()
        except BaseException as exc:
            if rctx is None:
                rid = exc.context.get("request_id") if isinstance(exc, VoiceBotError) else None
                rctx = self.ctx.request(None, rid)
            decision = self.server.errors.capture(exc, rctx)
            if decision is not None:
                await self.apply_decision(decision)
        finally:
            self.sync_context()
            self.server.counters.frame(rctx.message_type if rctx is not None else None,
                                       time.perf_counter() - started)

    async def apply_decision(self, decision: Decision) -> None:
        """Carry out the error handler's decision: reply, then close or recover; spend the error budget."""
        self.server.counters.count_sent("error")
        self.enqueue(protocol.encode(decision.reply))
        if decision.close is not None:
            self.request_close(*decision.close)
            return
        await self.server.errors.recover(decision, {"resend_state": self._resend_state, "retry_later": _noop})
        if self.budget.spend(trio.current_time()):
            self.server.errors.note_close(CLOSE_POLICY)
            self.request_close(CLOSE_POLICY, f"too many errors ({self.budget.limit} in {self.budget.window:g} s)")

    async def _hello_deadline(self) -> None:
        with trio.move_on_after(self.server.settings.hello_timeout):
            await self.greeted.wait()
            self.greeted = SET_EVENT  # the connection's own event is not kept for its lifetime
            return
        self.request_close(CLOSE_HELLO_TIMEOUT, "hello timeout: send hello first")

    async def _finish(self) -> None:
        self._ended = True
        self._batch.ws = None  # every byte from here on goes to the WebSocket (and no reference cycle is left)
        self._outbox = None
        self.server.quotas.outboxes.remove(self.address, self.out_bytes)  # what was never sent is dropped with us
        self.out_bytes = 0
        code, reason = self.close_decision or (CLOSE_NORMAL, "")
        if self._broken:  # a frame was cut: no close frame can follow; the stream is aborted by the server
            self.server.connection_closed(self)
            self._set_finished()
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.server.close_timeout
            try:
                await self._batch.flush()  # frames held by a writer that stopped mid-batch go first
                await self.ws.aclose(code, reason or None)
            except Exception as exc:  # a broken socket while closing: count it, the connection is gone anyway
                self.server.errors.capture(exc, attrs.evolve(self.ctx, component="close"))
        # Outside the bounded scope: runs even when the close handshake hit its deadline.
        self.server.connection_closed(self)
        self._set_finished()

    def _set_finished(self) -> None:
        self._done = True
        if self._finished is not None:
            self._finished.set()

    # -- context & recovery -------------------------------------------------------------------------
    def sync_context(self) -> None:
        """Copy the session's peer and lobby into the error context (for log lines and statistics)."""
        session = self.server.hub.session_of(self.id)
        if session is not None:
            self.ctx.peer_id = session.peer_id
            self.ctx.lobby_id = session.lobby_id

    async def _resend_state(self, decision: Decision) -> None:
        """MEDIUM recovery: tell the client the authoritative lobby state so it can resynchronise."""
        self.send(self.server.state_message(self.id))


async def _noop(decision: Decision) -> None:
    return None
