"""The process's own bot worker is not held to the per-address connection quotas meant for clients: one client
churning bots must not make everyone's bots fail on the worker's shared connection rate."""

from __future__ import annotations

import trio
import trio.testing
from workers_helpers import running_worker

from voicebot.testing import open_client, open_test_server, settings_for_tests
from voicebot.workers import BotHubSettings, install_bot_hub


async def test_in_process_bot_connections_skip_the_connection_quotas(
        autojump_clock: trio.testing.MockClock) -> None:
    # One new connection per 1,000 s and two at once per address: the worker's control connection plus its bots
    # would be refused (HTTP 429) at once if they counted.
    settings = settings_for_tests(connection_rate_per_address=0.001, connection_burst_per_address=1,
                                  max_connections_per_address=2, max_bots_per_lobby=4, max_bots_per_peer=4)
    async with open_test_server(settings) as server:
        bot_hub = install_bot_hub(server, BotHubSettings(start_timeout=5.0))
        async with open_client(server, "owner", remote="10.0.0.1:1") as owner, \
                running_worker(server, bot_hub, capacity=4):
            room = await owner.create_lobby("room")
            await owner.join(room["id"])
            for _ in range(3):  # add and remove, then add more than the address's connection cap at once
                added = await owner.request("bot.add", bot="idle")
                await owner.request("bot.remove", peer_id=added["peer_id"])
            peers = [(await owner.request("bot.add", bot="idle"))["peer_id"] for _ in range(4)]
            assert len(set(peers)) == 4
            assert server.quotas.connections.get("local-worker", 0) == 0  # nothing counted for the worker
            assert server.quotas.refused_connections == 0
            bots = [c for c in server.connections.values() if c.remote == "local-worker"]
            assert len(bots) >= 5 and len({c.address for c in bots}) == len(bots)  # each its own outbox budget
