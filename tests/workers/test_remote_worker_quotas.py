"""Workers that connect over the network (``voicebot worker``) are counted like clients until they prove the worker
token; then their connections stop counting against their address, so many bots on workers behind one address
(a NAT, a proxy, one machine) are not refused, while the address's other clients still are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trio_websocket
from workers_helpers import FAKE_BOTS

from voicebot.client import Client, RemoteError, connect_stream
from voicebot.server import Server
from voicebot.testing import open_client, open_test_server, settings_for_tests
from voicebot.workers import BotHubSettings, Connector, Worker, WorkerConfig, install_bot_hub

TOKEN = "remote-worker-token"


def _from(server: Server, host: str) -> Connector:
    """Connections from ``host`` as if over TCP (untrusted: admitted by the per-address quotas)."""
    ports = iter(range(40000, 50000))

    @asynccontextmanager
    async def open_one() -> AsyncIterator[Client]:
        client_end, server_end = trio.testing.memory_stream_pair()
        server.connect_stream(server_end, f"{host}:{next(ports)}")
        async with connect_stream(client_end) as client:
            yield client

    return open_one


async def _refused(server: Server, remote: str) -> bool:
    refused = False
    try:
        async with open_client(server, "probe", remote=remote):
            pass
    except* trio_websocket.ConnectionRejected:
        refused = True
    return refused


async def test_proven_workers_stop_counting_against_their_address(autojump_clock: trio.testing.MockClock) -> None:
    settings = settings_for_tests(max_connections_per_address=3, connection_rate_per_address=1.0,
                                  connection_burst_per_address=4, max_bots_per_lobby=8, max_bots_per_peer=8,
                                  worker_token=TOKEN)
    async with open_test_server(settings) as server, trio.open_nursery() as nursery:
        install_bot_hub(server, BotHubSettings(worker_token=TOKEN, start_timeout=5.0))
        worker = Worker(FAKE_BOTS, WorkerConfig(token=TOKEN, capacity=6, name="remote"))
        nursery.start_soon(worker.run, _from(server, "6.6.6.6"))
        await worker.registered.wait()
        async with open_client(server, "owner", remote="7.7.7.7:1") as owner:
            room = await owner.create_lobby("room")
            await owner.join(room["id"])
            # seven connections from 6.6.6.6 (control + 6 bots) against a cap of 3 and a burst of 4
            peers = [(await owner.request("bot.add", bot="idle"))["peer_id"] for _ in range(6)]
            assert len(set(peers)) == 6
            assert server.quotas.connections.get("6.6.6.6", 0) == 0
            assert server.quotas.spared_workers == 7 and server.quotas.refused_connections == 0
            # the address's other clients are still held to the cap
            async with open_client(server, "u1", remote="6.6.6.6:1"), open_client(server, "u2", remote="6.6.6.6:2"), \
                    open_client(server, "u3", remote="6.6.6.6:3"):
                assert server.quotas.connections["6.6.6.6"] == 3
                assert await _refused(server, "6.6.6.6:4")
            await trio.sleep(1)
            assert server.quotas.connections.get("6.6.6.6", 0) == 0  # released once, not twice
            for peer_id in peers:
                await owner.request("bot.remove", peer_id=peer_id)
        nursery.cancel_scope.cancel()
    assert server.quotas.connections == {}


async def test_a_wrong_or_missing_worker_token_keeps_the_slot(autojump_clock: trio.testing.MockClock) -> None:
    settings = settings_for_tests(max_connections_per_address=2, connection_rate_per_address=0, worker_token=TOKEN)
    async with open_test_server(settings) as server:
        install_bot_hub(server, BotHubSettings(worker_token=TOKEN))
        async with open_client(server, None, remote="6.6.6.6:1") as liar, \
                open_client(server, "plain", remote="6.6.6.6:2"):
            with pytest.raises(RemoteError) as refused:
                await liar.hello("liar", kind="bot", worker_token="wrong")
            assert refused.value.code == "auth_failed"
            assert server.quotas.connections["6.6.6.6"] == 2
            assert server.quotas.spared_workers == 0
            assert await _refused(server, "6.6.6.6:3")
