"""The in-process worker on a thread of its own (what ``voicebot serve`` runs): bots run outside the hub's Trio
run, over a socket pair, and stop with the server. Real threads and the real clock (no mock clock across threads)."""

from __future__ import annotations

import random
import threading

import trio

from voicebot.bots import BotSession, BotSpec
from voicebot.server import Server
from voicebot.testing import FakePasswordHasher, open_client, settings_for_tests
from voicebot.workers import BotHubSettings, Worker, install_bot_hub, run_local_worker


class _Where:
    """Records the thread and Trio run each bot runs in."""

    def __init__(self, seen: list[tuple[int, object]]) -> None:
        self.seen = seen

    async def run(self, session: BotSession) -> None:
        self.seen.append((threading.get_ident(), trio.lowlevel.current_trio_token()))
        await trio.sleep_forever()


async def test_bots_run_on_the_worker_thread_and_stop_with_the_server() -> None:
    seen: list[tuple[int, object]] = []
    bots = {"where": BotSpec("where", "records its thread", lambda _o: _Where(seen), needs_media=False)}
    server = Server(settings_for_tests(), rng=random.Random(1), passwords=FakePasswordHasher(), listen=False)
    bot_hub = install_bot_hub(server, BotHubSettings(start_timeout=10.0))
    before = {t.ident for t in threading.enumerate()}
    assert [t.name for t in threading.enumerate() if t.name == "voicebot-local-worker"] == []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            worker: Worker = await nursery.start(lambda task_status: run_local_worker(
                server, bot_hub, bots=bots, own_thread=True, task_status=task_status))
            assert worker.registered.is_set()
            [thread] = [t for t in threading.enumerate() if t.ident not in before and t.name == "voicebot-local-worker"]
            async with open_client(server, "owner") as owner:
                room = await owner.create_lobby("room")
                await owner.join(room["id"])
                added = await owner.request("bot.add", bot="where", timeout=10)
                joined = await owner.next_event("peer.joined", timeout=10)
                assert joined["peer"]["peer_id"] == added["peer_id"]
                [(thread_id, token)] = seen
                assert thread_id != threading.get_ident()  # not the hub's thread ...
                assert token is not trio.lowlevel.current_trio_token()  # ... nor its Trio run
                assert (await owner.request("ping"))["type"] == "pong"
                await owner.request("bot.remove", peer_id=added["peer_id"])
                left = await owner.next_event("peer.left", timeout=10)
                assert left["peer_id"] == added["peer_id"]
            stats = server.statistics()
            assert "assistants" in stats
            server.shutdown()
    assert not thread.is_alive()  # the thread ended with it


async def test_a_stopped_hub_ends_the_worker_thread() -> None:
    bots = {"where": BotSpec("where", "records its thread", lambda _o: _Where([]), needs_media=False)}
    server = Server(settings_for_tests(), rng=random.Random(2), passwords=FakePasswordHasher(), listen=False)
    bot_hub = install_bot_hub(server, BotHubSettings(start_timeout=10.0))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            scope = trio.CancelScope()

            async def worker_task(task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED) -> None:
                with scope:
                    await run_local_worker(server, bot_hub, bots=bots, own_thread=True, task_status=task_status)

            before = {t.ident for t in threading.enumerate()}
            await nursery.start(worker_task)
            [thread] = [t for t in threading.enumerate() if t.ident not in before and t.name == "voicebot-local-worker"]
            started = trio.current_time()
            scope.cancel()  # what serve does when it stops: the thread's run is cancelled and joined
            await trio.to_thread.run_sync(thread.join, 10)
            assert not thread.is_alive()
            assert trio.current_time() - started < 5
            server.shutdown()
