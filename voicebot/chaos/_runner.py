"""One chaos seed: a fresh ``trio.run`` on ``MockClock(autojump_threshold=0)`` with a fresh in-process server.

The workload (simulated clients connecting, creating/joining/leaving lobbies, relaying signals, chatting,
dropping and resuming, virtual time passing, audit writes and read-backs) is drawn from ``random.Random``
seeded from the master seed; the fault plan draws from its own per-point streams. After every step the
system is let run until idle (``wait_all_tasks_blocked``) and the state invariants are checked; routing is
checked on every delivery; the end-of-run invariants after a graceful shutdown.
"""

from __future__ import annotations

import collections
import contextlib
import random
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from voicebot import faults
from voicebot.server import Server, Settings
from voicebot.testing import open_test_server, settings_for_tests
from voicebot.testing._determinism import deterministic_scheduling

from ._clients import SimClient
from ._defaults import DEFAULT_CLIENTS, DEFAULT_STEPS
from ._invariants import ChaosServer, SeedVerdict, check_end, check_error_accounting, check_state
from ._persist import AuditRecorder
from ._plan import default_plan

__all__ = ["ACTIONS", "ChaosConfig", "SeedResult", "chaos_settings", "run_seed"]

#: Workload actions and their relative weights.
ACTIONS: tuple[tuple[str, int], ...] = (
    ("connect", 3), ("create", 2), ("join", 4), ("leave", 1), ("signal", 3), ("chat", 4), ("list", 1),
    ("drop", 1), ("close", 1), ("sleep", 3), ("persist", 2), ("verify", 1), ("garbage", 1),
)
_NAMES = [name for name, _ in ACTIONS]
_WEIGHTS = [weight for _, weight in ACTIONS]
_SLEEPS = (0.05, 0.5, 2.0, 6.0, 12.0)
_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"
_CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def chaos_settings() -> Settings:
    """Short timers so heartbeats, grace expiry and hello timeouts happen within a seed's virtual minutes."""
    return settings_for_tests(heartbeat_interval=5.0, resume_grace=8.0, hello_timeout=5.0, shutdown_timeout=5.0,
                              empty_lobby_ttl=30.0)


@attrs.frozen(kw_only=True)
class ChaosConfig:
    """Size of one seed's workload."""

    clients: int = DEFAULT_CLIENTS
    steps: int = DEFAULT_STEPS
    settings: Settings = attrs.field(factory=chaos_settings)
    server_factory: Callable[..., Server] = ChaosServer
    """Must build a :class:`ChaosServer` (subclass it to plant bugs in tests)."""
    time_limit: float = 3600.0
    """Virtual seconds after which the run counts as hung."""


@attrs.frozen(kw_only=True)
class SeedResult(SeedVerdict):
    """What one seed did and whether every invariant held."""

    seed: int
    journal: str
    injections: dict[tuple[str, str], int]
    errors: dict[str, int]
    actions: dict[str, int]
    virtual_time: float
    replay: str
    traceback: str | None = None
    """Formatted traceback of an exception that escaped the server (kept out of the journal)."""


def run_seed(
    seed: int, plan: faults.Plan | None = None, *, config: ChaosConfig | None = None,
    plan_path: str | Path | None = None,
) -> SeedResult:
    """Run one seed in a fresh ``trio.run`` (default plan: :func:`default_plan`) and return its result."""
    config = config if config is not None else ChaosConfig()
    plan = plan if plan is not None else default_plan()
    deterministic_scheduling(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    result: SeedResult = trio.run(_main, seed, plan, config, plan_path, clock, clock=clock)
    return result


async def _main(
    seed: int, plan: faults.Plan, config: ChaosConfig, plan_path: str | Path | None, clock: trio.testing.MockClock
) -> SeedResult:
    actions: collections.Counter[str] = collections.Counter()
    with faults.activate(plan, seed=seed, plan_path=plan_path) as run:
        tasks_before = trio.lowlevel.current_statistics().tasks_living
        recorder = AuditRecorder.open()
        server: ChaosServer | None = None
        escaped: str | None = None
        try:
            with trio.CancelScope() as limit:
                async with contextlib.AsyncExitStack() as stack:
                    with _faults_off(run):
                        # The server opens its store in a worker thread. With a zero autojump threshold the
                        # event loop would busy-poll (starving that thread of the GIL) and leap to any pending
                        # deadline meanwhile; startup has no timers, so block briefly on I/O instead.
                        clock.autojump_threshold = 0.05
                        srv = await stack.enter_async_context(
                            open_test_server(config.settings, seed=seed, server_factory=config.server_factory))
                        clock.autojump_threshold = 0.0
                    # The deadline starts only now: the server opens its store in a worker thread at startup,
                    # and the autojump clock would leap to any pending deadline while that thread runs.
                    limit.deadline = trio.current_time() + config.time_limit
                    assert isinstance(srv, ChaosServer), "server_factory must build a ChaosServer"
                    server = srv
                    recorder.attach(srv)
                    await _workload(srv, recorder, seed, config, actions)
            faults.invariant(not limit.cancelled_caught, "run_finishes", limit=config.time_limit)
        except Exception as exc:  # a failure escaping the server is itself a violation (Cancelled passes through)
            faults.invariant(False, "no_unhandled_exception", exception=exc)
            escaped = "".join(traceback.format_exception(exc))
        with trio.CancelScope(shield=True):
            await recorder.aclose()
        if server is not None:
            await trio.testing.wait_all_tasks_blocked()
            check_end(server, tasks_before, trio.lowlevel.current_statistics().tasks_living)
            check_error_accounting(server, run)
        errors = collections.Counter[str]()
        for _, kind, fields in run.journal.entries():
            if kind == "error":
                errors[str(fields.get("code"))] += 1
        return SeedResult(
            seed=seed, violations=tuple(run.violations), journal=run.journal.getvalue(),
            injections=dict(run.injections), errors=dict(errors), actions=dict(actions),
            virtual_time=trio.current_time(), replay=run.replay_command(), traceback=escaped,
        )


@contextlib.contextmanager
def _faults_off(run: faults.FaultRun) -> Iterator[None]:
    """Server startup (store open, restore) runs with no faults: the suite tests a running server.

    Afterwards the per-point states and hit counters start afresh, so scripted hit numbers count from the
    first workload step and the random streams are the same whatever startup did.
    """
    plan = run.plan
    run.plan = faults.Plan(name=plan.name)
    try:
        yield
    finally:
        run.plan = plan
        run._points.clear()
        run.hits.clear()


async def _workload(
    server: ChaosServer, recorder: AuditRecorder, seed: int, config: ChaosConfig, actions: collections.Counter[str]
) -> None:
    rng = random.Random(faults.stream_seed(seed, "workload"))
    clients = [SimClient(i) for i in range(config.clients)]
    async with trio.open_nursery() as nursery:
        driver = _Driver(server, nursery, recorder, rng, clients)
        for step in range(config.steps):
            action = rng.choices(_NAMES, _WEIGHTS)[0]
            client = clients[rng.randrange(len(clients))]
            faults.record("step", n=step, action=action, client=client.index)
            actions[action] += 1
            await driver.do(action, client)
            await trio.testing.wait_all_tasks_blocked()
            check_state(server)
        while recorder.pending:
            await recorder.flush()
        await recorder.verify(final=True)
        await trio.testing.wait_all_tasks_blocked()
        check_state(server)
        server.shutdown()
        await server.stopped.wait()
        with trio.move_on_after(10.0) as waited:
            for client in clients:
                await client.done.wait()
        faults.invariant(not waited.cancelled_caught, "clients_see_close",
                         open=[c.index for c in clients if not c.done.is_set()])
        nursery.cancel_scope.cancel()


class _Driver:
    """Carries out one workload action for one simulated client."""

    def __init__(
        self, server: ChaosServer, nursery: trio.Nursery, recorder: AuditRecorder, rng: random.Random,
        clients: list[SimClient],
    ) -> None:
        self.server = server
        self.nursery = nursery
        self.recorder = recorder
        self.rng = rng
        self.clients = clients
        self.lobbies: list[str] = []
        self._scanned: dict[int, int] = {}

    def _learn(self) -> None:
        for client in self.clients:
            start = self._scanned.get(client.index, 0)
            for message in client.received[start:]:
                lobby: Any = message.get("lobby")
                if (message.get("type") == "lobby.created" and isinstance(lobby, dict) and "id" in lobby
                        and lobby["id"] not in self.lobbies):
                    self.lobbies.append(str(lobby["id"]))
            self._scanned[client.index] = len(client.received)

    async def do(self, action: str, client: SimClient) -> None:
        """Perform ``action``; a disconnected client connects (or resumes) instead."""
        self._learn()
        if action in ("sleep", "persist", "verify"):
            await getattr(self, "_" + action)()
            return
        if not client.connected:
            await self._connect(client)
            return
        await getattr(self, "_" + action)(client)

    async def _connect(self, client: SimClient) -> None:
        if client.connected:
            await client.send("ping")
            return
        if not await client.connect(self.server, self.nursery):
            return
        resume = client.token if client.token is not None and self.rng.random() < 0.8 else None
        fields: dict[str, Any] = {"resume": resume} if resume is not None else {}
        await client.send("hello", name=client.name, **fields)

    async def _create(self, client: SimClient) -> None:
        """Create a lobby and, once the reply is in, join it (so lobbies get members to route between)."""
        known = len(self.lobbies)
        await client.send("lobby.create", name=f"room{self.rng.randrange(100)}", max_members=self.rng.randint(2, 4))
        await trio.testing.wait_all_tasks_blocked()
        self._learn()
        if len(self.lobbies) > known:
            await client.send("lobby.join", lobby_id=self.lobbies[-1])

    async def _join(self, client: SimClient) -> None:
        lobby = self.rng.choice(self.lobbies) if self.lobbies and self.rng.random() < 0.9 else "l_000000000000"
        await client.send("lobby.join", lobby_id=lobby)

    async def _leave(self, client: SimClient) -> None:
        await client.send("lobby.leave")

    async def _signal(self, client: SimClient) -> None:
        peers = [c.peer_id for c in self.clients if c.peer_id is not None and c is not client]
        to = self.rng.choice(peers) if peers else "p_000000000000"
        kind = self.rng.choice(("offer", "answer", "candidate", "bye"))
        extra: dict[str, Any] = {}
        if kind in ("offer", "answer"):
            extra["sdp"] = _SDP
        elif kind == "candidate":
            extra["candidate"] = _CANDIDATE
        await client.send("signal", to=to, kind=kind, **extra)

    async def _chat(self, client: SimClient) -> None:
        await client.send("chat", text=f"hello {self.rng.randrange(1000)}")

    async def _list(self, client: SimClient) -> None:
        await client.send("lobby.list")

    async def _drop(self, client: SimClient) -> None:
        await client.drop()

    async def _close(self, client: SimClient) -> None:
        await client.close()

    async def _garbage(self, client: SimClient) -> None:
        ws = client.ws
        if ws is not None:
            await client.send(self.rng.choice(("nope", "lobby.join", "signal")))

    async def _sleep(self) -> None:
        await trio.sleep(self.rng.choice(_SLEEPS))

    async def _persist(self) -> None:
        await self.recorder.flush()

    async def _verify(self) -> None:
        await self.recorder.verify()
