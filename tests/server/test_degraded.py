"""Database unavailable: what needs it fails retryably, the breaker opens, the rest keeps working, it recovers."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from voicebot import faults
from voicebot.client import RemoteError
from voicebot.hub import Hub, Membership, NewLobby
from voicebot.server import Server
from voicebot.testing import open_client


async def test_store_outage_degrades_only_what_needs_the_store(server: Server, autojump_clock: object) -> None:
    outage = faults.Plan(rules=[faults.Rule(
        point="store.write", first=1, last=60, fault=faults.raises(sqlite3.OperationalError, "disk I/O error"))])
    async with open_client(server, "a", admin_token=server.admin_token) as a, open_client(server, "b") as b:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        await b.join(room["id"])
        with faults.activate(outage, seed=1, scope="global") as run:
            failures = []
            for i in range(6):
                with pytest.raises(RemoteError) as info:
                    await a.request("lobby.create", name=f"p{i}", persistent=True)
                failures.append(info.value)
            assert all(f.retryable for f in failures)
            assert all(f.category == "persistence" or f.code == "circuit_open" for f in failures)
            assert failures[0].code == "database_unavailable"
            assert failures[-1].code == "circuit_open" and failures[-1].retry_after
            stats = server.statistics()
            assert stats["persistence"]["degraded"] is True
            assert stats["breakers"]["persistence"]["state"] == "open"
            # everything that does not need the database keeps working
            assert (await a.create_lobby("ephemeral"))["persistent"] is False
            await b.chat("still talking")
            assert (await a.next_event("chat"))["text"] == "still talking"
            sdp = "v=0\r\n"
            await a.signal(b.peer_id, "offer", sdp=sdp)
            assert (await b.next_event("signal"))["kind"] == "offer"
            assert run.stats()["injections"]
        # the outage is over: after the open wait the breaker lets probes through and closes again
        await trio.sleep(failures[-1].retry_after or 10)
        for i in range(3):
            assert (await a.create_lobby(f"back{i}", persistent=True))["persistent"] is True
        assert server.statistics()["persistence"]["degraded"] is False


async def test_a_persistent_join_the_store_cannot_record_is_refused_and_unannounced(
    server: Server, autojump_clock: object
) -> None:
    """Write-before-acknowledge for joins: the membership of a persistent lobby is stored before ``lobby.joined``;
    when the store fails the joiner gets the persistence error, is not a member and nobody heard of it."""
    outage = faults.Plan(rules=[faults.Rule(
        point="store.write", first=1, last=3, fault=faults.raises(sqlite3.OperationalError, "disk I/O error"))])
    async with open_client(server, "a", admin_token=server.admin_token) as a, open_client(server, "b") as b:
        kept = await a.create_lobby("kept", persistent=True)
        await a.join(kept["id"])
        with faults.activate(outage, seed=1, scope="global"), pytest.raises(RemoteError) as info:
            await b.join(kept["id"])
        assert info.value.category == "persistence" and info.value.retryable
        assert server.hub.sessions[b.peer_id].lobby_id is None
        assert list(server.hub.lobbies[kept["id"]].members) == [a.peer_id]
        await a.chat("anyone?")
        assert (await a.next_event())["type"] == "chat"  # no peer.joined came before it
        assert [p["peer_id"] for p in (await b.join(kept["id"]))["peers"]] == [a.peer_id]  # the store is back


async def test_a_stored_join_that_then_fails_is_unstored(server: Server, autojump_clock: object) -> None:
    """The lobby filled while a member's join was being written: the join fails (``lobby_full``) and the stored
    session no longer names the lobby (so a restart does not put it there)."""
    write = trio.Event()
    persist = server.persistence.persist

    async def slow_persist(hub: Hub, record: NewLobby | Membership) -> None:
        await persist(hub, record)
        if isinstance(record, Membership) and record.peer_id == b.peer_id:
            await write.wait()

    server.persistence.persist = slow_persist  # type: ignore[method-assign]
    async with open_client(server, "a", admin_token=server.admin_token) as a, open_client(server, "b") as b, \
            open_client(server, "c") as c:
        kept = await a.create_lobby("pair", persistent=True, max_members=2)
        await a.join(kept["id"])
        async with trio.open_nursery() as nursery:

            async def join_b() -> None:
                with pytest.raises(RemoteError) as info:
                    await b.join(kept["id"])
                assert info.value.code == "lobby_full"

            nursery.start_soon(join_b)
            await trio.sleep(1)  # b's membership is on disk; its join waits
            await c.join(kept["id"])
            write.set()
        await trio.sleep(1)  # the background re-save
        stored = {r.peer_id: r.lobby_id for r in await server.persistence.require().list_sessions()}
        assert stored[b.peer_id] is None and stored[c.peer_id] == kept["id"]
        assert server.hub.sessions[b.peer_id].lobby_id is None
