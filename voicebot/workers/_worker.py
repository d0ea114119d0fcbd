"""Worker side: register with the hub, run bots on demand, each job under its own supervisor.

A :class:`Worker` holds one *control* connection (``hello`` kind ``bot``, then ``worker.register``) and gets
``worker.start {job}`` / ``worker.stop {job_id}`` pushed on it. Every job runs in the worker's job nursery in its
own cancel scope under a one-child :class:`~voicebot.resilience.Supervisor` (policy TRANSIENT): the bot connects
with its *own* hub connection (``hello`` kind ``bot``), joins the lobby, and reports ``worker.started`` with its
peer id. A crash after that restarts it (resuming its session, so it keeps its peer id and lobby place) until
the restart budget is spent (then ``worker.failed``); a failure before the first join is reported as
``worker.failed`` and not retried here (the hub retries on another worker). Messages to the hub go through one
bounded outbox (256 reports; each is small by construction — ids ≤ 64 characters, messages cut to 500 — so the
outbox stays under ~256 KiB; when full, reports are dropped and logged) drained by one writer task, which
cannot die on text (the client's encoder replaces lone surrogates).
"""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import trio

from ..bots import BotSession, BotSpec
from ..client import Client, connect, connect_stream
from ..errors import VoiceBotError, WebSocketError, classify, split_passthrough
from ..resilience import Policy, RestartBudgetExceeded, Supervisor
from ..server import Server

__all__ = ["Connector", "Worker", "WorkerConfig", "memory_connector", "url_connector"]

log = logging.getLogger("voicebot.workers")

Connector = Callable[[], AbstractAsyncContextManager[Client]]
"""Opens one hub connection (``connect(url)`` or an in-memory stream into an in-process server)."""


def url_connector(url: str, ssl_context: ssl.SSLContext | None = None) -> Connector:
    """Connect over WebSocket to ``url`` (``ws://host:port/ws``, or ``wss://`` verified with ``ssl_context``)."""
    return lambda: connect(url, ssl_context=ssl_context)


def memory_connector(server: Server, remote: str = "local-worker") -> Connector:
    """Connect to an in-process ``server`` through an in-memory stream (no TCP; a connection of the process's own,
    not held to per-address connection quotas)."""

    @asynccontextmanager
    async def open_one() -> AsyncIterator[Client]:
        from trio.testing import memory_stream_pair  # noqa: PLC0415 - trio.testing brings pytest (~9 MiB)

        client_end, server_end = memory_stream_pair()
        server.connect_stream(server_end, remote, trusted=True)
        async with connect_stream(client_end) as client:
            yield client

    return open_one


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """How a worker behaves."""

    token: str
    """The hub's worker token."""
    capacity: int = 12
    """Bots this worker runs at once."""
    name: str = "worker"
    """Shown in the hub's logs."""
    max_restarts: int = 3
    """Restarts per job within ``restart_window`` before the job is given up."""
    restart_window: float = 60.0
    """Seconds of the per-job restart budget window."""
    restart_backoff: float = 0.5
    """Seconds before a crashed bot restarts."""
    request_timeout: float = 10.0
    """Deadline of hello/register/join requests."""


class _MediaLoop:
    """Runs media jobs inside the process's media loop (aiortc under trio-asyncio), opened at the first one and
    kept until the worker stops: a worker whose bots have not started holds no asyncio loop and has not
    imported aiortc or av. Jobs are started by the task that owns the loop, so they run in its context (where
    :func:`~voicebot.media.current_media_runtime` finds it)."""

    def __init__(self, nursery: trio.Nursery, capacity: int) -> None:
        self._nursery = nursery
        # at most ``capacity`` running jobs plus as many stopping ones exist (Worker._start refuses more), so a
        # start never finds it full
        self._send, self._recv = trio.open_memory_channel[tuple[Callable[..., Awaitable[None]], tuple[Any, ...], str]](
            2 * capacity)
        self._opened = False

    def start_soon(self, fn: Callable[..., Awaitable[None]], *args: Any, name: str) -> None:
        """Start ``fn(*args)`` in the media loop's nursery (opening the loop first if this is the first job)."""
        self._send.send_nowait((fn, args, name))
        if not self._opened:
            self._opened = True
            self._nursery.start_soon(self._serve, name="media-loop")

    async def _serve(self) -> None:
        from ..media import open_media_loop  # noqa: PLC0415 - aiortc, av and asyncio load with the first media bot

        async with open_media_loop(), trio.open_nursery() as jobs:
            async for fn, args, name in self._recv:
                jobs.start_soon(fn, *args, name=name)


@attrs.define(eq=False)
class _Job:
    job_id: str
    spec: BotSpec
    lobby_id: str
    options: dict[str, Any]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    started: bool = False
    resume: str | None = None
    peer_id: str | None = None
    ticket: str | None = None
    sessions: int = 0
    """How many times the bot joined (1 + restarts)."""


class Worker:
    """Runs bots for one hub. ``await worker.run(connector)``; returns when the control connection ends."""

    def __init__(self, bots: Mapping[str, BotSpec], config: WorkerConfig) -> None:
        self.bots = dict(bots)
        self.config = config
        self.jobs: dict[str, _Job] = {}
        self._stopping: set[str] = set()
        """Jobs the hub stopped that are still closing (their connection's close handshake): not counted against
        the capacity, because the hub freed their place when it sent ``worker.stop`` and may start another bot
        at once (a ``bot.remove`` followed by a ``bot.add``)."""
        """Running jobs by id."""
        self.worker_id: str | None = None
        """Assigned by the hub at registration."""
        self.registered = trio.Event()
        """Set once registered."""
        self._out_send, self._out_recv = trio.open_memory_channel[dict[str, Any]](256)

    async def run(self, connector: Connector, *, task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect, register, serve jobs until the control connection closes (then raise ``WebSocketError``)."""
        async with AsyncExitStack() as stack:
            control = await stack.enter_async_context(connector())
            with trio.fail_after(self.config.request_timeout):
                await control.hello(self.config.name, kind="bot", worker_token=self.config.token)
            reply = await control.request(
                "worker.register", token=self.config.token, capacity=self.config.capacity, name=self.config.name,
                bots=[spec.descriptor() for spec in self.bots.values()], timeout=self.config.request_timeout,
            )
            self.worker_id = reply["worker_id"]
            self.registered.set()
            async with trio.open_nursery() as nursery:
                media = _MediaLoop(nursery, self.config.capacity) if self._needs_media_loop() else None
                nursery.start_soon(self._writer, control)
                task_status.started(self)
                async for event in control.events:
                    kind = event.get("type")
                    if kind == "worker.start":
                        self._start(nursery, media, connector, event.get("job") or {})
                    elif kind == "worker.stop":
                        job = self.jobs.get(str(event.get("job_id")))
                        if job is not None:
                            self._stopping.add(job.job_id)
                            job.scope.cancel()
                nursery.cancel_scope.cancel()
        raise WebSocketError("worker lost its hub connection", code="worker_connection_lost", retryable=True)

    def _report(self, message: dict[str, Any]) -> None:
        try:
            self._out_send.send_nowait(message)
        except trio.WouldBlock:  # documented bound: 256 reports queued means the hub is gone; drop and count
            log.warning("worker outbox full; dropping %s", message.get("type"))

    async def _writer(self, control: Client) -> None:
        async for message in self._out_recv:
            with trio.fail_after(self.config.request_timeout):
                await control.send(message)

    def _needs_media_loop(self) -> bool:
        """Whether media bots need a loop of their own: none is open around the worker (a caller, e.g. a test,
        may have opened the process's loop already; if its module is not even loaded, none is open)."""
        if not any(spec.needs_media for spec in self.bots.values()):
            return False
        if "voicebot.media._runtime" not in sys.modules:
            return True
        from ..media import current_media_runtime  # noqa: PLC0415 - loaded already (checked above)

        try:
            current_media_runtime()
        except VoiceBotError:
            return True
        return False

    def _start(self, nursery: trio.Nursery, media: _MediaLoop | None, connector: Connector,
               wire: Mapping[str, Any]) -> None:
        job_id = str(wire.get("job_id", ""))
        spec = self.bots.get(str(wire.get("bot", "")))
        if spec is None:
            self._report({"type": "worker.failed", "job_id": job_id, "code": "bot_unknown",
                          "message": "this worker does not run that bot", "retryable": True})
            return
        running = len(self.jobs) - len(self._stopping)
        if running >= self.config.capacity or len(self.jobs) >= 2 * self.config.capacity or job_id in self.jobs:
            self._report({"type": "worker.failed", "job_id": job_id, "code": "worker_full",
                          "message": "worker at capacity", "retryable": True})
            return
        job = _Job(job_id, spec, str(wire.get("lobby_id", "")), dict(wire.get("options") or {}),
                   ticket=str(wire["ticket"]) if wire.get("ticket") else None)
        self.jobs[job_id] = job
        if media is not None and spec.needs_media:
            media.start_soon(self._job, connector, job, name=f"job:{job_id}")
        else:
            nursery.start_soon(self._job, connector, job, name=f"job:{job_id}")

    async def _job(self, connector: Connector, job: _Job) -> None:
        try:
            with job.scope:
                async with Supervisor(max_restarts=self.config.max_restarts, within=self.config.restart_window,
                                      backoff=self.config.restart_backoff, name=f"job:{job.job_id}") as sup:
                    sup.start_child(job.spec.name, self._bot_once, connector, job, policy=Policy.TRANSIENT)
        except RestartBudgetExceeded as exc:
            log.warning("job %s: bot %s gave up after restarts: %r", job.job_id, job.spec.name, exc.__cause__)
            self._report({"type": "worker.failed", "job_id": job.job_id, "code": "bot_crashed",
                          "message": "the bot kept crashing", "retryable": True})
        except BaseException as exc:  # a failure racing a cancellation: never let it out of this job
            passthrough, failure = split_passthrough(exc)
            if failure is not None:
                log.info("job %s ended during cancellation: %r", job.job_id, failure)
            if passthrough is not None:
                raise passthrough from None
        finally:
            self.jobs.pop(job.job_id, None)
            self._stopping.discard(job.job_id)
        if not job.scope.cancelled_caught and job.started:
            self._report({"type": "worker.stopped", "job_id": job.job_id, "reason": "ended"})

    async def _bot_once(self, connector: Connector, job: _Job) -> None:
        """One life of the bot: connect, (re)join, run. Before the first join, failures are reported, not raised."""
        try:
            bot = job.spec.factory(job.options)
        except VoiceBotError as exc:
            self._report({"type": "worker.failed", "job_id": job.job_id, "code": exc.code,
                          "message": exc.message[:500], "retryable": False})
            return
        prepare = getattr(bot, "prepare", None)
        if prepare is not None and not job.started:  # slow set-up (e.g. TTS, off the loop) before joining
            try:
                await prepare()
            except VoiceBotError as exc:
                self._report({"type": "worker.failed", "job_id": job.job_id, "code": exc.code,
                              "message": exc.message[:500], "retryable": exc.retryable})
                return
        try:
            async with connector() as client:
                with trio.fail_after(self.config.request_timeout):
                    await client.hello(job.spec.name, kind="bot", worker_token=self.config.token,
                                       **({"resume": job.resume} if job.resume else {}))
                    joined = await client.join(job.lobby_id, **({"ticket": job.ticket} if job.ticket else {}))
                job.resume = client.resume_token
                session = BotSession(client, lobby_id=job.lobby_id, joined=joined, job_id=job.job_id,
                                     options=job.options)
                job.sessions += 1
                if not job.started or client.peer_id != job.peer_id:
                    job.started = True
                    job.peer_id = client.peer_id
                    self._report({"type": "worker.started", "job_id": job.job_id, "peer_id": client.peer_id})
                await session.run(bot)
        except Exception as exc:
            if job.started:
                raise  # a crash: the supervisor restarts us
            error = classify(exc).error
            log.warning("job %s: bot %s failed to start: %s", job.job_id, job.spec.name, error)
            self._report({"type": "worker.failed", "job_id": job.job_id, "code": error.code,
                          "message": error.message[:500], "retryable": True})
