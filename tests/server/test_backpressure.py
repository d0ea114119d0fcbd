"""Back-pressure instead of buffering: a client that does not read stops being read, per connection and per
address, and what an address holds in outboxes is bounded in bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio
import trio.testing

from voicebot.client import Client
from voicebot.server import Server
from voicebot.server._connection import Connection
from voicebot.testing import FreezableStream, open_client, open_test_server, settings_for_tests

LOBBIES = 20


def _conn_of(server: Server, client: Client) -> Connection:
    return next(c for c in server.connections.values()
                if (s := server.hub.session_of(c.id)) is not None and s.peer_id == client.peer_id)


@asynccontextmanager
async def frozen_client(server: Server, name: str, remote: str) -> AsyncIterator[tuple[Client, FreezableStream]]:
    """A client (lockstep stream: real back-pressure) whose reads can be stopped."""
    streams: list[FreezableStream] = []

    def wrap(stream: trio.abc.Stream) -> trio.abc.Stream:
        streams.append(FreezableStream(stream))
        return streams[-1]

    async with open_client(server, name, lockstep=True, remote=remote, wrap=wrap) as client:
        yield client, streams[0]


async def _fill_lobbies(server: Server) -> int:
    """Public lobbies with long names, so that ``lobby.list`` replies are ~2 KB; returns one reply's size."""
    async with open_client(server, "maker", remote="10.9.9.9:1") as maker:
        for i in range(LOBBIES):
            await maker.create_lobby(f"{i} " + "n" * 60)
        reply = await maker.request("lobby.list", limit=LOBBIES)
    return len(str(reply)) * 2


async def _send_requests(client: Client, n: int, sent: list[int]) -> None:
    for i in range(n):
        await client.send({"type": "lobby.list", "id": f"r{i}", "limit": LOBBIES})
        sent.append(i)


async def test_a_client_that_does_not_read_stops_being_read(autojump_clock: trio.testing.MockClock) -> None:
    limit = 40_000
    settings = settings_for_tests(outbox_size=10_000, outbox_bytes=limit, request_rate=10_000.0,
                                  request_burst=10_000, request_rate_per_address=10_000.0,
                                  request_burst_per_address=10_000, max_lobbies_per_address=0, max_lobbies_per_peer=0)
    async with open_test_server(settings) as server:
        reply_size = await _fill_lobbies(server)
        async with frozen_client(server, "slow", "10.0.0.1:1") as (slow, stream):
            conn = _conn_of(server, slow)
            stream.freeze()
            sent: list[int] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_send_requests, slow, 300, sent)
                await trio.sleep(5)
                assert conn.paused  # the reader waits for the outbox to drain ...
                assert len(sent) < 300  # ... so the client's own sends wait in its stream, not in our memory
                assert conn.out_bytes <= limit // 2 + reply_size
                assert conn.close_decision is None
                stream.thaw()  # reading again: every request is answered, in order, nothing dropped
                for i in range(300):
                    reply = await slow.next_event("lobby.list")
                    assert reply["reply_to"] == f"r{i}"
            assert conn.close_decision is None
            assert server.quotas.outboxes.pauses >= 1


async def test_an_address_is_bounded_across_its_connections(autojump_clock: trio.testing.MockClock) -> None:
    budget = 40_000
    settings = settings_for_tests(outbox_size=10_000, outbox_bytes=1_000_000, outbox_bytes_per_address=budget,
                                  request_rate=10_000.0, request_burst=10_000, request_rate_per_address=10_000.0,
                                  request_burst_per_address=10_000, max_lobbies_per_address=0, max_lobbies_per_peer=0)
    async with open_test_server(settings) as server:
        reply_size = await _fill_lobbies(server)
        ledger = server.quotas.outboxes
        async with AsyncExitStack() as stack:
            slow = [await stack.enter_async_context(frozen_client(server, f"slow{i}", f"10.0.0.1:{i}"))
                    for i in range(4)]
            neighbour = await stack.enter_async_context(open_client(server, "neighbour", remote="10.0.0.2:1"))
            for _, stream in slow:
                stream.freeze()
            async with trio.open_nursery() as nursery:
                for client, _ in slow:
                    nursery.start_soon(_send_requests, client, 200, [])
                await trio.sleep(5)
                conns = [_conn_of(server, client) for client, _ in slow]
                assert all(c.paused for c in conns)  # every connection of the address stopped being read
                assert ledger.total("10.0.0.1") <= budget // 2 + len(conns) * reply_size
                assert all(c.out_bytes < 1_000_000 // 2 for c in conns)  # the address budget, not their own
                started = trio.current_time()
                assert (await neighbour.request("ping"))["type"] == "pong"  # another address is not held up
                assert trio.current_time() - started < 0.1
                assert ledger.total("10.0.0.2") == 0
                for _, stream in slow:
                    stream.thaw()
                for client, _ in slow:
                    for i in range(200):
                        assert (await client.next_event("lobby.list"))["reply_to"] == f"r{i}"
            assert all(c.close_decision is None for c in conns)
        assert ledger.total("10.0.0.1") == 0  # nothing left on the books once they are gone


async def test_messages_beyond_the_address_budget_close_1008(autojump_clock: trio.testing.MockClock) -> None:
    budget = 30_000
    settings = settings_for_tests(outbox_size=10_000, outbox_bytes=1_000_000, outbox_bytes_per_address=budget,
                                  request_rate=10_000.0, request_burst=10_000)
    async with open_test_server(settings) as server:
        ledger = server.quotas.outboxes
        async with AsyncExitStack() as stack:
            talker = await stack.enter_async_context(open_client(server, "talker", remote="10.0.0.2:1"))
            room = await talker.create_lobby("room", max_members=8)
            await talker.join(room["id"])
            slow = [await stack.enter_async_context(frozen_client(server, f"slow{i}", f"10.0.0.1:{i}"))
                    for i in range(3)]
            for client, stream in slow:
                await client.join(room["id"])
                stream.freeze()
            conns = [_conn_of(server, client) for client, _ in slow]
            line = "x" * 1500
            for _ in range(200):
                await talker.chat(line)
                await talker.next_event("chat")
                assert ledger.total("10.0.0.1") <= budget + len(conns) * 1700  # one message per connection over
                if all(c.close_decision is not None for c in conns):
                    break
            assert all(c.close_decision is not None and c.close_decision[0] == 1008 for c in conns)
            assert (await talker.request("ping"))["type"] == "pong"
