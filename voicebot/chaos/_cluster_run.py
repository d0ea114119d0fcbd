"""One multi-hub chaos seed: 2–3 in-process hubs in cluster mode over one real ``redis-server`` and one
PostgreSQL database, simulated clients on every hub, the seed's schedule of steps and faults (one hub lost
mid-run without any goodbye, a Redis outage window), invariants after every step and at checkpoints.

It runs on the real clock (Redis is a real server: its expiry, pub/sub and reconnection take real time), so the
same seed replays the same steps and faults (:func:`~voicebot.chaos.cluster_schedule`) but not a byte-identical
journal; the invariants (:mod:`._cluster_checks`) are what every run must satisfy.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from voicebot import faults
from voicebot.server import Server
from voicebot.testing import FakePasswordHasher, RedisEngine, settings_for_tests

from ._cluster_checks import (
    ChatRecord,
    ClusterChaosServer,
    ClusterSimClient,
    check_hub_state,
    membership_problems,
    undelivered_chats,
)
from ._cluster_plan import ClusterChaosConfig, ClusterSchedule, ClusterStep, cluster_schedule
from ._invariants import SeedVerdict, check_end

__all__ = ["ClusterSeedResult", "run_cluster_seed"]

_SLEEPS = (0.1, 0.3, 1.0, 2.5)


@attrs.frozen(kw_only=True)
class ClusterSeedResult(SeedVerdict):
    """What one multi-hub seed did and whether every invariant held."""

    seed: int
    schedule: str
    """:meth:`ClusterSchedule.describe` of the seed (equal for every run of the seed)."""
    journal: str
    actions: dict[str, int]
    checks: dict[str, int]
    """How often each kind of check ran (membership checkpoints, chat deliveries owed and verified, ...)."""
    seconds: float


def run_cluster_seed(
    seed: int, *, redis: RedisEngine, db_url: str, config: ClusterChaosConfig | None = None,
    server_factory: Callable[..., Server] = ClusterChaosServer,
) -> ClusterSeedResult:
    """Run one seed in a fresh ``trio.run`` against ``redis`` (flushed first; it is stopped and started again
    during the outage window) and the PostgreSQL database ``db_url`` (every hub shares it)."""
    config = config if config is not None else ClusterChaosConfig()
    schedule = cluster_schedule(seed, config)
    redis.command("FLUSHALL")
    result: ClusterSeedResult = trio.run(_main, seed, schedule, config, redis, db_url, server_factory)
    return result


async def _main(seed: int, schedule: ClusterSchedule, config: ClusterChaosConfig, redis: RedisEngine,  # noqa: PLR0917
                db_url: str, server_factory: Callable[..., Server]) -> ClusterSeedResult:
    started = time.monotonic()
    with faults.activate(faults.Plan(name="cluster"), seed=seed) as run:
        tasks_before = trio.lowlevel.current_statistics().tasks_living
        driver = _Driver(seed, config, redis)
        try:
            async with trio.open_nursery() as nursery:
                driver.nursery = nursery
                for index in range(config.hubs):  # one after the other: the first one migrates the database
                    await driver.start_hub(index, db_url, server_factory)
                nursery.start_soon(driver.monitor)
                await driver.wait_available("start")
                await driver.play(schedule)
                nursery.cancel_scope.cancel()
        finally:
            if redis.process.poll() is not None:  # a failure inside the outage window: leave Redis running
                with trio.CancelScope(shield=True):  # bounded: start() gives up after 30 s
                    await trio.to_thread.run_sync(redis.start)
        driver.checks["messages from other hubs"] = sum(s.cluster.received for s in driver.servers if s.cluster)
        for index, server in enumerate(driver.servers):
            if index in driver.killed:
                faults.invariant(server.stopped.is_set(), "lost_hub_stopped", hub=index)
            else:
                assert isinstance(server, ClusterChaosServer)
                check_end(server, tasks_before, trio.lowlevel.current_statistics().tasks_living)
        return ClusterSeedResult(seed=seed, violations=tuple(run.violations), schedule=schedule.describe(),
                                 journal=run.journal.getvalue(), actions=dict(driver.actions),
                                 checks=dict(driver.checks), seconds=round(time.monotonic() - started, 2))


class _Driver:
    """Runs the hubs and carries out the schedule's steps and faults."""

    def __init__(self, seed: int, config: ClusterChaosConfig, redis: RedisEngine) -> None:
        self.seed = seed
        self.config = config
        self.redis = redis
        self.nursery: trio.Nursery | None = None
        self.servers: list[Server] = []
        self.scopes: list[trio.CancelScope] = []
        self.killed: set[int] = set()
        self.clients = [ClusterSimClient(i) for i in range(config.clients)]
        self.lobbies: list[str] = []
        self.records: list[ChatRecord] = []
        self.told_of_loss: list[tuple[ClusterSimClient, int, list[str]]] = []
        self.fault_epoch = 0
        """Bumped by every fault and every moment a live hub is not available: chats are owed within one."""
        self.actions: collections.Counter[str] = collections.Counter()
        self.checks: collections.Counter[str] = collections.Counter()

    @property
    def live(self) -> list[Server]:
        """The hubs still running (not lost)."""
        return [s for i, s in enumerate(self.servers) if i not in self.killed]

    # -- hubs and faults ----------------------------------------------------------------------------
    async def start_hub(self, index: int, db_url: str, factory: Callable[..., Server]) -> None:
        """Start hub ``index`` in its own cancel scope (cancelling it is the hub's sudden loss)."""
        settings = settings_for_tests(cluster=self.redis.url, db=db_url, resume_grace=self.config.resume_grace,
                                      heartbeat_interval=5.0, hello_timeout=5.0, shutdown_timeout=5.0,
                                      empty_lobby_ttl=30.0)
        server = factory(settings, rng=random.Random(faults.stream_seed(self.seed, f"hub{index}")), listen=False,
                         passwords=FakePasswordHasher())
        assert server.cluster is not None
        server.cluster.heartbeat = self.config.heartbeat
        server.cluster.hub_ttl = self.config.hub_ttl
        scope = trio.CancelScope()
        assert self.nursery is not None
        await self.nursery.start(partial(_run_hub, server, scope))
        self.servers.append(server)
        self.scopes.append(scope)

    async def kill(self, index: int) -> None:
        """Lose hub ``index``: its tasks are cancelled (no leave reaches Redis) and its clients' connections
        break, as when its process is killed."""
        faults.record("fault", kind="hub_lost", hub=index)
        self.fault_epoch += 1
        lost = {c.peer_id for c in self.clients if c.hub == index and c.connected and c.peer_id is not None}
        self.told_of_loss = [(c, c.epoch, sorted(c.view & lost)) for c in self.clients
                             if c.hub != index and c.connected and c.view & lost]
        self.killed.add(index)
        self.scopes[index].cancel()
        for client in self.clients:
            if client.hub == index and client.connected:
                await client.drop()
        with trio.move_on_after(10):
            await self.servers[index].stopped.wait()
        self.forget_closed()

    def check_told_of_loss(self) -> None:
        """``lost_hub_peers_leave_disconnected`` for the clients that had peers of the lost hub in their lobby
        and stayed connected and in it."""
        for client, epoch, peers in self.told_of_loss:
            if client.epoch == epoch and client.connected:
                for peer in peers:
                    self.checks["lost hub's peers seen leaving"] += 1
                    faults.invariant(client.left.get(peer) == "disconnected", "lost_hub_peers_leave_disconnected",
                                     client=client.index, peer=peer, reason=client.left.get(peer))

    async def redis_down(self) -> None:
        """Stop ``redis-server`` (its data is gone: no persistence)."""
        faults.record("fault", kind="redis_down")
        self.fault_epoch += 1
        await trio.to_thread.run_sync(self.redis.stop)

    async def redis_up(self) -> None:
        """Start ``redis-server`` again (empty) and wait until every live hub is available."""
        await trio.to_thread.run_sync(self.redis.start)
        faults.record("fault", kind="redis_up")
        self.fault_epoch += 1
        await self.wait_available("redis back")

    async def wait_available(self, label: str, timeout: float = 20.0) -> None:
        """Until every live hub's cluster status is ``available`` (``cluster_available`` if it never is)."""
        with trio.move_on_after(timeout):
            while any(s.cluster is not None and s.cluster.status() != "available"  # noqa: ASYNC110 - polling
                      for s in self.live):
                await trio.sleep(0.05)
        down = [i for i, s in enumerate(self.servers)
                if i not in self.killed and s.cluster is not None and s.cluster.status() != "available"]
        faults.invariant(not down, "cluster_available", at=label, hubs=down)

    async def monitor(self) -> None:
        """Bump the fault epoch whenever a live hub stops being available (messages may be lost then)."""
        was_up = True
        while True:
            up = all(s.cluster is not None and s.cluster.status() == "available" for s in self.live)
            if was_up and not up:
                self.fault_epoch += 1
            was_up = up
            await trio.sleep(0.02)

    # -- the schedule -------------------------------------------------------------------------------
    async def play(self, schedule: ClusterSchedule) -> None:
        """Every step, the faults at their steps, checkpoints, then a graceful shutdown of the live hubs."""
        outage = schedule.outage
        for step in schedule.steps:
            if step.n == schedule.kill_at and schedule.killed_hub is not None:
                await self.checkpoint(f"before losing hub {schedule.killed_hub}")
                await self.kill(schedule.killed_hub)
                await self.checkpoint(f"after losing hub {schedule.killed_hub}")
                self.check_told_of_loss()
            if outage is not None and step.n == outage[0]:
                await self.checkpoint("before the redis outage")
                await self.redis_down()
            if outage is not None and step.n == outage[1]:
                await self.redis_up()
                await self.checkpoint("after the redis outage")
            faults.record("step", n=step.n, action=step.action, client=step.client, hub=step.hub)
            self.actions[step.action] += 1
            await self.do(step)
            await self.settle()
            for index, server in enumerate(self.servers):
                if index not in self.killed:
                    check_hub_state(server, index)
            if step.n % 10 == 9 and (outage is None or not outage[0] <= step.n < outage[1]):
                await self.checkpoint(f"step {step.n}")
        if outage is not None and outage[1] >= len(schedule.steps):
            await self.redis_up()
        await self.checkpoint("end")
        await self.shutdown()

    async def shutdown(self) -> None:
        """Graceful shutdown of the live hubs; every client must see its connection close."""
        for server in self.live:
            server.shutdown()
        with trio.move_on_after(15):
            for server in self.live:
                await server.stopped.wait()
        with trio.move_on_after(10) as waited:
            for client in self.clients:
                await client.done.wait()
        faults.invariant(not waited.cancelled_caught, "clients_see_close",
                         open=[c.index for c in self.clients if not c.done.is_set()])

    async def settle(self) -> None:
        """Until every connected client has its answers (``request_answered`` for any still missing)."""
        deadline = trio.current_time() + self.config.reply_timeout
        while trio.current_time() < deadline and any(  # noqa: ASYNC110 - polling the clients' state
                c.connected and c.unanswered for c in self.clients):
            await trio.sleep(0.005)
        for client in self.clients:
            if client.connected:
                faults.invariant(not client.unanswered, "request_answered", client=client.index,
                                 requests=sorted(client.unanswered.items()))
                client.unanswered.clear()
        self.forget_closed()
        self._learn()

    def forget_closed(self) -> None:
        """Clients whose connection ended (dropped, closed, or their hub lost) forget their session."""
        for client in self.clients:
            if not client.connected and (client.lobby_id is not None or client.view or client.peer_id is not None):
                client.forget()

    def _learn(self) -> None:
        for client in self.clients:
            for message in client.received:
                lobby: Any = message.get("lobby")
                if (message.get("type") == "lobby.created" and isinstance(lobby, dict)
                        and lobby.get("id") not in self.lobbies):
                    self.lobbies.append(str(lobby["id"]))
            client.received.clear()

    async def checkpoint(self, label: str) -> None:
        """Wait (bounded) for the hubs and clients to agree on membership and for owed chats to arrive, then
        report ``membership_consistent`` and ``acknowledged_chat_delivered``."""
        deadline = trio.current_time() + self.config.converge_timeout
        while True:
            problems = membership_problems(self.live, self.clients)
            owed, missing = undelivered_chats(self.records, self.clients, self.fault_epoch)
            if (not problems and not missing) or trio.current_time() >= deadline:
                break
            await trio.sleep(0.05)
        faults.invariant(not problems, "membership_consistent", at=label, problems=problems[:4])
        for record, receiver in missing:
            faults.invariant(False, "acknowledged_chat_delivered", at=label, sender=record.sender.index,
                             text=record.text, receiver=receiver)
        self.checks["membership checkpoints"] += 1
        homes: dict[str, set[int]] = collections.defaultdict(set)
        for index, server in enumerate(self.servers):
            if index not in self.killed:
                for session in server.hub.sessions.values():
                    if session.home is None and session.lobby_id is not None:
                        homes[session.lobby_id].add(index)
        self.checks["lobbies spanning hubs at checkpoints"] += sum(len(h) > 1 for h in homes.values())
        self.checks["chat deliveries verified"] += owed
        owed, missing = undelivered_chats(self.records, self.clients, self.fault_epoch, unheard=True)
        self.checks["chats to a joiner the sender had not heard of"] += owed
        self.checks["... of them missed"] += len(missing)
        self.records.clear()

    # -- steps --------------------------------------------------------------------------------------
    async def do(self, step: ClusterStep) -> None:
        """Carry out one step (a client that is not connected connects instead, except for ``sleep``; one that is
        in no lobby joins or creates one instead of chatting, signalling or leaving)."""
        client = self.clients[step.client]
        if step.action == "sleep":
            await trio.sleep(_SLEEPS[step.arg % len(_SLEEPS)])
        elif not client.connected or step.action == "connect":
            await self._connect(client, step.hub)
        elif step.action in ("chat", "signal", "leave") and client.lobby_id is None:
            await (self._join if self.lobbies else self._create)(client, step.arg)  # into a lobby first
        else:
            await getattr(self, "_" + step.action)(client, step.arg)

    async def _connect(self, client: ClusterSimClient, hub: int) -> None:
        if client.connected:
            await client.send("ping")
            return
        if await client.connect(self.servers[hub], self._nursery()):
            client.hub = hub
            client.peer_id = None
            await client.send("hello", name=client.name)

    def _nursery(self) -> trio.Nursery:
        assert self.nursery is not None
        return self.nursery

    async def _create(self, client: ClusterSimClient, arg: int) -> None:
        known = len(self.lobbies)
        await client.send("lobby.create", name=f"room{arg % 100}", max_members=3 + arg % 4)
        await self.settle()
        if len(self.lobbies) > known and client.connected:
            await client.send("lobby.join", lobby_id=self.lobbies[-1])

    async def _join(self, client: ClusterSimClient, arg: int) -> None:
        # mostly one of the three newest lobbies (so lobbies fill up across hubs), sometimes an older one
        recent = self.lobbies[-3:] if arg % 4 else self.lobbies
        lobby = recent[arg // 4 % len(recent)] if self.lobbies and arg % 10 else "l_000000000000"
        await client.send("lobby.join", lobby_id=lobby)

    async def _leave(self, client: ClusterSimClient, arg: int) -> None:
        await client.send("lobby.leave")

    async def _chat(self, client: ClusterSimClient, arg: int) -> None:
        text = f"c{client.index}:{client.next_seq()}"
        if client.lobby_id is not None and client.peer_id is not None:
            members = [c for c in self.clients if c is not client and c.connected and c.lobby_id == client.lobby_id]
            self.checks["chats sent in a lobby"] += 1
            self.records.append(ChatRecord(
                client, client.peer_id, text, client.next_request_id(), self.fault_epoch,
                receivers={c.index: c.epoch for c in members if c.peer_id in client.view},
                unheard={c.index: c.epoch for c in members if c.peer_id not in client.view}))
        await client.send("chat", text=text)

    async def _signal(self, client: ClusterSimClient, arg: int) -> None:
        peers = sorted(client.view)
        to = peers[arg % len(peers)] if peers else "p_000000000000"
        sdp = f"v=0\r\no=- {client.next_seq()} 2 IN IP4 127.0.0.1\r\ns=-\r\n"
        await client.send("signal", to=to, kind=("offer", "answer")[arg % 2], sdp=sdp)

    async def _list(self, client: ClusterSimClient, arg: int) -> None:
        await client.send("lobby.list")

    async def _drop(self, client: ClusterSimClient, arg: int) -> None:
        await client.drop()
        self.forget_closed()

    async def _close(self, client: ClusterSimClient, arg: int) -> None:
        await client.close()
        self.forget_closed()


async def _run_hub(server: Server, scope: trio.CancelScope, task_status: trio.TaskStatus[Server]) -> None:
    with scope:
        await server.run(task_status=task_status)
