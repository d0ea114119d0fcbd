"""Bot quotas and join tickets hold cluster-wide (two in-process hubs sharing one real Redis and one PostgreSQL
database, a worker registered with each)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from tests.workers.workers_helpers import FAKE_BOTS, running_worker
from voicebot.client import Client, RemoteError
from voicebot.testing import PostgresEngine, RedisEngine, open_client, open_test_server, settings_for_tests
from voicebot.workers import BotHubSettings, install_bot_hub
from voicebot.workers._worker import Worker, WorkerConfig, memory_connector

pytestmark = pytest.mark.slow


async def _outcome(client: Client, outcomes: list[tuple[str, str]], who: str) -> None:
    try:
        await client.request("bot.add", bot="idle", timeout=20)
        outcomes.append((who, "ok"))
    except RemoteError as exc:
        outcomes.append((who, exc.code))


async def test_bot_quotas_hold_across_hubs(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    settings = settings_for_tests(db=postgres_server.new_database("quotas"), cluster=redis_server.url,
                                  max_bots_per_lobby=3, max_bots_per_peer=2)
    async with open_test_server(settings, seed=1) as one, open_test_server(settings, seed=2) as two:
        bots_one = install_bot_hub(one, BotHubSettings(start_timeout=5.0))
        bots_two = install_bot_hub(two, BotHubSettings(start_timeout=5.0))
        # Hub one's worker has room for one bot: Ada's other requests go to hub two's worker.
        async with (running_worker(one, bots_one, capacity=1), running_worker(two, bots_two, capacity=6),
                    open_client(one, "Ada") as ada, open_client(two, "Bob") as bob):
            lobby = await ada.create_lobby("crowded", max_members=16)
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            await trio.sleep(1.5)  # both hubs' heartbeats have published their workers' room
            outcomes: list[tuple[str, str]] = []
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(_outcome, ada, outcomes, "ada")
                    nursery.start_soon(_outcome, bob, outcomes, "bob")
            assert {code for _, code in outcomes} <= {"ok", "bot_quota"}, outcomes
            ok = [who for who, code in outcomes if code == "ok"]
            assert len(ok) == 3, outcomes  # the lobby's quota, over both hubs' bots
            assert ok.count("ada") <= 2 and ok.count("bob") <= 2, outcomes  # each peer's quota
            assert len(bots_one.scheduler.jobs) + len(bots_two.scheduler.jobs) == 3

            # A bot that goes gives its place back cluster-wide.
            holder = bots_two if bots_two.scheduler.jobs else bots_one
            job = next(iter(holder.scheduler.jobs.values()))
            owner = holder.quotas.owners[job.job_id]
            client = ada if owner == ada.peer_id else bob
            await client.request("bot.remove", peer_id=job.peer_id)
            with trio.fail_after(10):
                while True:  # the place comes back once the release reached Redis
                    try:
                        await client.request("bot.add", bot="idle", timeout=20)
                        break
                    except RemoteError as exc:
                        if exc.code != "bot_quota":
                            raise
                        await trio.sleep(0.2)
            with pytest.raises(RemoteError) as info:
                await bob.request("bot.add", bot="idle", timeout=20)
            assert info.value.code == "bot_quota"


async def test_a_bot_joins_through_another_hub_with_its_ticket(redis_server: RedisEngine,
                                                              postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    settings = settings_for_tests(db=postgres_server.new_database("tickets"), cluster=redis_server.url)
    hub_settings = BotHubSettings(start_timeout=5.0, worker_token="shared-worker-token")
    async with open_test_server(settings, seed=1) as one, open_test_server(settings, seed=2) as two:
        install_bot_hub(one, hub_settings)
        install_bot_hub(two, hub_settings)
        # The worker registers with hub two; its bots connect to hub one (as through a load balancer).
        to_two, to_one = memory_connector(two), memory_connector(one)
        calls = 0

        def connector() -> AbstractAsyncContextManager[Client]:
            nonlocal calls
            calls += 1
            return to_two() if calls == 1 else to_one()

        worker = Worker(FAKE_BOTS, WorkerConfig(token="shared-worker-token", capacity=2, name="w"))
        async with trio.open_nursery() as nursery, open_client(one, "Ada") as ada:
            await nursery.start(_run_worker, worker, connector)
            lobby = await ada.create_lobby("locked", password="letmein")
            await ada.join(lobby["id"], password="letmein")
            await trio.sleep(1.5)  # hub two's heartbeat has published its worker's room
            added = await ada.request("bot.add", bot="idle", timeout=20)  # started by hub two, ticket from there
            joined = await ada.next_event("peer.joined", timeout=10)
            assert joined["peer"]["peer_id"] == added["peer_id"]
            assert one.hub.sessions[added["peer_id"]].home is None  # its socket is on hub one
            async with open_client(one, "Eve") as eve:
                with pytest.raises(RemoteError) as info:  # a made-up ticket still gets nobody in
                    await eve.join(lobby["id"], ticket="made-up-ticket")
                assert info.value.code == "wrong_password"
            nursery.cancel_scope.cancel()


async def _run_worker(worker: Worker, connector: Any, task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    await worker.run(connector, task_status=task_status)



async def test_a_failed_start_gives_its_places_back_before_the_error(redis_server: RedisEngine,
                                                                    postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    settings = settings_for_tests(db=postgres_server.new_database("failed_start"), cluster=redis_server.url,
                                  max_bots_per_lobby=1)
    async with open_test_server(settings, seed=1) as one, open_test_server(settings, seed=2) as two:
        bots_one = install_bot_hub(one, BotHubSettings(start_timeout=5.0))
        bots_two = install_bot_hub(two, BotHubSettings(start_timeout=5.0))
        assert one.cluster is not None
        relay = one.cluster.bots
        freed = relay.freed

        async def slow_freed(job_id: str, lobby_id: str, owner: str) -> None:
            await trio.sleep(2.0)  # hub one's Redis calls lag (a busy publisher queue, a slow link)
            await freed(job_id, lobby_id, owner)

        relay.freed = slow_freed  # type: ignore[method-assign]
        async with (running_worker(one, bots_one, capacity=2), running_worker(two, bots_two, capacity=2),
                    open_client(one, "Ada") as ada, open_client(two, "Bob") as bob):
            lobby = await ada.create_lobby("retry", max_members=4)
            await ada.join(lobby["id"])
            await bob.join(lobby["id"])
            with pytest.raises(RemoteError) as info:  # the worker refuses to start it: no place is kept
                await ada.request("bot.add", bot="picky", timeout=20)
            assert info.value.code == "invalid_options"
            assert not bots_one.scheduler.jobs
            added = await bob.request("bot.add", bot="idle", timeout=20)  # right after, through the other hub
            assert added["type"] == "bot.added" and len(bots_two.scheduler.jobs) == 1
