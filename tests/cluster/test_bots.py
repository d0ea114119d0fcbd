"""``bot.add``/``bot.remove`` served by a worker registered with another hub (two in-process hubs sharing one
real Redis and one PostgreSQL database; the worker and its bots connect to hub two, the users to hub one)."""

from __future__ import annotations

import pytest
import trio

from tests.workers.workers_helpers import running_worker
from voicebot.client import RemoteError
from voicebot.testing import PostgresEngine, RedisEngine, open_client, open_test_server, settings_for_tests
from voicebot.workers import BotHubSettings, install_bot_hub

pytestmark = pytest.mark.slow


async def test_bot_add_and_remove_through_another_hubs_worker(redis_server: RedisEngine,
                                                              postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    settings = settings_for_tests(db=postgres_server.new_database("bots"), cluster=redis_server.url)
    async with open_test_server(settings, seed=1) as one, open_test_server(settings, seed=2) as two:
        install_bot_hub(one, BotHubSettings(start_timeout=5.0))  # no worker registers with hub one
        bots_two = install_bot_hub(two, BotHubSettings(start_timeout=5.0))
        async with (running_worker(two, bots_two, capacity=2), open_client(one, "Ada") as ada,
                    open_client(one, "Bob") as bob):
            lobby = await ada.create_lobby("helped", password="letmein")
            await ada.join(lobby["id"], password="letmein")
            await bob.join(lobby["id"], password="letmein")
            assert (await ada.next_event("peer.joined"))["peer"]["peer_id"] == bob.peer_id
            await trio.sleep(1.5)  # hub two's heartbeat has published its worker's room
            listed = await ada.request("bot.list")  # hub one has no worker: it lists hub two's
            assert {b["name"]: b["available"] for b in listed["bots"]} == {"idle": True, "crashy": True,
                                                                           "picky": True}
            added = await ada.request("bot.add", bot="idle")
            assert (added["type"], added["bot"], added["lobby_id"]) == ("bot.added", "idle", lobby["id"])
            joined = await ada.next_event("peer.joined")  # the bot got in with hub two's ticket
            assert joined["peer"] == {"peer_id": added["peer_id"], "name": joined["peer"]["name"], "kind": "bot"}
            assert (await bob.next_event("peer.joined"))["peer"]["peer_id"] == added["peer_id"]
            assert two.hub.sessions[added["peer_id"]].home is None  # its socket is on hub two

            with pytest.raises(RemoteError) as info:  # the owner check runs on hub two, for hub one's request
                await bob.request("bot.remove", peer_id=added["peer_id"])
            assert info.value.code == "not_bot_owner"
            with pytest.raises(RemoteError) as info:
                await ada.request("bot.add", bot="no-such-bot")
            assert info.value.code == "bot_unknown"
            await ada.request("bot.add", bot="idle")  # the worker's second unit of room
            with pytest.raises(RemoteError) as info:  # none left anywhere
                await ada.request("bot.add", bot="idle")
            assert info.value.code in ("bot_capacity", "bot_unknown")

            removed = await ada.request("bot.remove", peer_id=added["peer_id"])
            assert removed["type"] == "bot.removed"
            left = await bob.next_event("peer.left")
            while left["peer_id"] != added["peer_id"]:
                left = await bob.next_event("peer.left")
            assert left["reason"] == "left"
