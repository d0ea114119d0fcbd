"""Issue 12 rows 6, 13, 14 and quotas: per address (connections, new connections per second, lobbies), per peer
(lobbies, bots), per lobby (bots); persistent lobbies for admins and registered names; bots removed by their owner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio_websocket

from tests.workers.workers_helpers import running_worker
from voicebot.client import Client, RemoteError
from voicebot.server import Server
from voicebot.server._quotas import Quotas, QuotaSettings
from voicebot.testing import open_client, open_test_server, settings_for_tests
from voicebot.workers import BotHub, BotHubSettings, install_bot_hub

ADMIN = "quota-admin-token"


def test_connection_quota_per_address_and_per_64() -> None:
    q = Quotas(QuotaSettings(max_connections_per_address=3, connection_rate_per_address=0))
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]:
        assert q.admit(host, 0.0) is None
    refused = q.admit("2001:db8:1:2::4", 0.0)
    assert refused is not None and refused.code == "too_many_connections"
    assert q.admit("2001:db8:1:3::1", 0.0) is None  # another /64
    assert q.admit("10.0.0.1", 0.0) is None
    q.release("2001:db8:1:2::2")
    assert q.admit("2001:db8:1:2::9", 0.0) is None
    assert q.refused_connections == 1


def test_new_connection_rate_per_address() -> None:
    q = Quotas(QuotaSettings(max_connections_per_address=0, connection_rate_per_address=2.0,
                             connection_burst_per_address=5))
    results = [q.admit("6.6.6.6", 0.0) for _ in range(8)]
    assert [r is None for r in results] == [True] * 5 + [False] * 3
    assert {r.code for r in results if r is not None} == {"connection_rate"}
    assert q.admit("7.7.7.7", 0.0) is None
    assert q.admit("6.6.6.6", 0.5) is None  # 2/s refills one token in 0.5 s
    assert q.admit("6.6.6.6", 0.5) is not None


async def _try_connect(server: Server, remote: str) -> bool:
    """True if a connection from ``remote`` gets as far as a welcome; False if refused with HTTP 429."""
    rejected: list[trio_websocket.ConnectionRejected] = []
    try:
        async with open_client(server, "probe", remote=remote):
            return True
    except* trio_websocket.ConnectionRejected as group:
        rejected += [e for e in group.exceptions if isinstance(e, trio_websocket.ConnectionRejected)]
    assert rejected[0].status_code == 429 and b"too_many_connections" in (rejected[0].body or b"")
    return False


async def test_server_refuses_connections_beyond_the_address_quota(autojump_clock: object) -> None:
    settings = settings_for_tests(max_connections_per_address=4, connection_rate_per_address=0)
    async with open_test_server(settings) as server, trio.open_nursery() as nursery:
        held: list[trio.Event] = []
        for i in range(4):
            release = trio.Event()
            held.append(release)

            async def hold(i: int = i, release: trio.Event = release) -> None:
                async with open_client(server, f"u{i}", remote=f"6.6.6.6:{i}"):
                    await release.wait()

            nursery.start_soon(hold)
        await trio.sleep(1)
        assert server.quotas.connections == {"6.6.6.6": 4}
        assert not await _try_connect(server, "6.6.6.6:99")
        assert await _try_connect(server, "7.7.7.7:1")  # the canary's address is unaffected
        held[0].set()
        await trio.sleep(1)
        assert await _try_connect(server, "6.6.6.6:100")
        for release in held:
            release.set()
    assert server.quotas.refused_connections == 1


@pytest.fixture
async def quota_server() -> AsyncIterator[tuple[Server, BotHub]]:
    settings = settings_for_tests(admin_token=ADMIN, max_lobbies_per_peer=2, max_lobbies_per_address=3,
                                  max_bots_per_peer=2, max_bots_per_lobby=3)
    async with open_test_server(settings) as server:
        yield server, install_bot_hub(server, BotHubSettings(start_timeout=5.0))


async def _create(client: Client, name: str, **fields: object) -> str:
    try:
        await client.create_lobby(name, **fields)
        return "ok"
    except RemoteError as exc:
        return exc.code


async def test_lobby_quotas_per_peer_and_address(quota_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, _ = quota_server
    async with open_client(server, "a", remote="6.6.6.6:1") as a, open_client(server, "b", remote="6.6.6.6:2") as b, \
            open_client(server, "c", remote="7.7.7.7:1") as c:
        assert [await _create(a, f"a{i}") for i in range(3)] == ["ok", "ok", "lobby_quota"]  # per peer: 2
        assert [await _create(b, f"b{i}") for i in range(2)] == ["ok", "lobby_quota"]  # per address: 3
        assert [await _create(c, f"c{i}") for i in range(2)] == ["ok", "ok"]  # another address
        await trio.sleep(server.settings.empty_lobby_ttl + 1)  # nobody joined: the lobbies expire
        assert [await _create(b, f"b{i}") for i in range(2)] == ["ok", "ok"]
    async with open_client(server, "boss", remote="6.6.6.6:3", admin_token=ADMIN) as boss:
        assert [await _create(boss, f"x{i}") for i in range(4)] == ["ok"] * 4  # admins are not held to quotas


async def test_persistent_lobbies_need_admin_or_registered_name(quota_server: tuple[Server, BotHub],
                                                                autojump_clock: object) -> None:
    server, _ = quota_server
    async with open_client(server, "anon", remote="6.6.6.6:1") as anon:
        with pytest.raises(RemoteError) as info:
            await anon.create_lobby("forever", persistent=True)
        assert (info.value.code, info.value.field) == ("forbidden", "persistent")
        await anon.request("name.register", password="now registered")
        assert (await anon.create_lobby("forever", persistent=True))["persistent"] is True
    async with open_client(server, "boss", remote="6.6.6.7:1", admin_token=ADMIN) as boss:
        assert (await boss.create_lobby("hq", persistent=True))["persistent"] is True


async def test_bot_quotas_and_only_the_owner_removes(quota_server: tuple[Server, BotHub],
                                                     autojump_clock: object) -> None:
    server, bot_hub = quota_server
    async with running_worker(server, bot_hub, capacity=12), \
            open_client(server, "alice", remote="6.6.6.6:1") as alice, \
            open_client(server, "bob", remote="7.7.7.7:1") as bob, \
            open_client(server, "boss", remote="8.8.8.8:1", admin_token=ADMIN) as boss:
        lobby = await alice.create_lobby("room")
        for who in (alice, bob, boss):
            await who.join(lobby["id"])

        async def add(who: Client) -> str:
            try:
                return str((await who.request("bot.add", bot="idle"))["peer_id"])
            except RemoteError as exc:
                return exc.code

        first, second, third = [await add(alice) for _ in range(3)]
        assert third == "bot_quota"  # per peer: 2
        assert (await add(bob)).startswith("p_")
        assert await add(bob) == "bot_quota"  # per lobby: 3
        with pytest.raises(RemoteError) as info:
            await bob.request("bot.remove", peer_id=first)
        assert info.value.code == "not_bot_owner"
        await alice.request("bot.remove", peer_id=first)
        await boss.request("bot.remove", peer_id=second)  # an admin may remove anyone's bot
        assert (await add(alice)).startswith("p_")


def test_request_budget_is_shared_by_an_addresss_connections() -> None:
    q = Quotas(QuotaSettings(request_rate_per_address=10.0, request_burst_per_address=20))
    assert q.admit("6.6.6.6", 0.0) is None
    taken = [q.take_request(f"6.6.6.6:{1000 + i % 7}", 0.0) for i in range(25)]  # 7 connections, one budget
    assert [t is None for t in taken] == [True] * 20 + [False] * 5
    assert q.take_request("[2001:db8::1]:5", 0.0) is None  # another address
    assert q.take_request("6.6.6.6:1", 0.1) is None  # 10/s refills one in 0.1 s
    q.release("6.6.6.6")
    assert q.take_request("6.6.6.6:1", 0.1) is None  # forgotten with its last connection: a fresh burst


async def test_server_rate_limits_an_address_across_connections(autojump_clock: object) -> None:
    settings = settings_for_tests(request_rate_per_address=5.0, request_burst_per_address=10, request_burst=100)
    async with open_test_server(settings) as server, \
            open_client(server, "a", remote="6.6.6.6:1") as a, open_client(server, "b", remote="6.6.6.6:2") as b, \
            open_client(server, "c", remote="7.7.7.7:1") as c:
        codes = []
        for who in (a, b) * 6:
            try:
                await who.request("ping")
                codes.append("ok")
            except RemoteError as exc:
                codes.append(exc.code)
        assert codes.count("ok") == 8 and codes.count("rate_limited") == 4  # hellos took 2 of the 10
        assert (await c.request("ping"))["type"] == "pong"  # another address is untouched
