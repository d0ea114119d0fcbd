"""bot.* and worker.* through an in-process server on the autojump clock, with fake bots (no media)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from workers_helpers import CrashOnceBot, running_worker

from voicebot.client import Client, RemoteError
from voicebot.resilience import CircuitState
from voicebot.server import Server
from voicebot.testing import open_client, open_test_server
from voicebot.testing._harness import settings_for_tests
from voicebot.workers import BotHub, BotHubSettings, install_bot_hub


@pytest.fixture
async def hub_server() -> AsyncIterator[tuple[Server, BotHub]]:
    # Quotas are tested on their own (tests/server/test_hardening_quotas.py): here capacity is what is measured.
    async with open_test_server(settings_for_tests(max_bots_per_lobby=0, max_bots_per_peer=0), seed=7) as server:
        yield server, install_bot_hub(server, BotHubSettings(start_timeout=5.0, worker_token="sekret"))


async def _lobby(client: Client) -> str:
    lobby = await client.create_lobby("room", max_members=32)
    await client.join(lobby["id"])
    return str(lobby["id"])


async def test_bot_list_and_add_and_remove(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "alice") as alice, running_worker(server, bot_hub, capacity=2):
        listed = await alice.request("bot.list")
        assert {"name": "idle", "description": "does nothing", "available": True} in listed["bots"]
        lobby_id = await _lobby(alice)
        added = await alice.request("bot.add", bot="idle")
        assert added["type"] == "bot.added" and added["lobby_id"] == lobby_id and added["bot"] == "idle"
        joined = await alice.next_event("peer.joined")
        assert joined["peer"] == {"peer_id": added["peer_id"], "name": "idle", "kind": "bot"}
        removed = await alice.request("bot.remove", peer_id=added["peer_id"])
        assert removed == {"type": "bot.removed", "peer_id": added["peer_id"], "reply_to": removed["reply_to"]}
        left = await alice.next_event("peer.left")
        assert left["peer_id"] == added["peer_id"] and left["reason"] == "left"
        assert bot_hub.scheduler.jobs == {}
        await trio.sleep(1)
        assert bot_hub.scheduler.jobs == {}  # the worker's late worker.stopped (if any) changes nothing


async def test_errors(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "alice") as alice, running_worker(server, bot_hub):
        with pytest.raises(RemoteError) as info:
            await alice.request("bot.add", bot="idle")
        assert info.value.code == "not_in_lobby"
        await _lobby(alice)
        with pytest.raises(RemoteError) as info:
            await alice.request("bot.add", bot="nope")
        assert info.value.code == "bot_unknown" and info.value.field == "bot"
        with pytest.raises(RemoteError) as info:
            await alice.request("bot.add", bot="picky")
        assert info.value.code == "invalid_options" and not info.value.retryable
        worker = next(iter(bot_hub.scheduler.workers.values()))
        assert bot_hub.breaker_of(worker).state is CircuitState.CLOSED
        assert worker.load == 0
        assert (await alice.request("bot.add", bot="picky", text="hi"))["type"] == "bot.added"
        with pytest.raises(RemoteError) as info:
            await alice.request("bot.remove", peer_id="p_nobody")
        assert info.value.code == "bot_not_found"
        with pytest.raises(RemoteError) as info:
            await alice.request("worker.started", job_id="j_x", peer_id="p_x")
        assert info.value.code == "not_a_worker"


async def test_worker_token_is_checked(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, _ = hub_server
    async with open_client(server, "w", kind="bot", worker_token="sekret") as w:
        with pytest.raises(RemoteError) as info:
            await w.request("worker.register", token="wrong", capacity=1, bots=[{"name": "idle"}])
        assert info.value.code == "worker_token_invalid"
    async with open_client(server, "w", kind="bot", worker_token="sekret") as w:
        reply = await w.request("worker.register", token="sekret", capacity=1, bots=[{"name": "idle"}])
        assert reply["worker_id"].startswith("w_")


@pytest.mark.parametrize("workers", [[5], [2, 3]])
async def test_simultaneous_adds_beyond_capacity_admit_exactly_capacity(
    hub_server: tuple[Server, BotHub], workers: list[int], autojump_clock: object
) -> None:
    server, bot_hub = hub_server
    capacity = sum(workers)
    results: list[dict[str, Any] | RemoteError] = []
    everyone_answered = trio.Event()
    async with open_client(server, "alice") as alice:
        lobby_id = await _lobby(alice)
        async with running_worker(server, bot_hub, capacity=workers[0], name="w0"), \
                running_worker(server, bot_hub, capacity=workers[-1], name="w1") if len(workers) > 1 \
                else open_client(server) as _:

            async def add(i: int) -> None:
                async with open_client(server, f"user{i}") as c:
                    await c.join(lobby_id)
                    try:
                        results.append(await c.request("bot.add", bot="idle"))
                    except RemoteError as exc:
                        results.append(exc)
                    if len(results) == capacity + 4:
                        everyone_answered.set()
                    await everyone_answered.wait()  # keep the requester connected while the others finish

            async with trio.open_nursery() as nursery:
                for i in range(capacity + 4):
                    nursery.start_soon(add, i)
            admitted = [r for r in results if isinstance(r, dict)]
            refused = [r for r in results if isinstance(r, RemoteError)]
            assert len(admitted) == capacity
            assert {r.code for r in refused} == {"bot_capacity"} and len(refused) == 4
            assert all(r.retryable for r in refused)
            assert all(w.load == w.capacity for w in bot_hub.scheduler.workers.values())
            assert (await alice.request("bot.list"))["bots"][1]["available"] is False


async def test_worker_disconnect_bots_leave_with_disconnected(
    hub_server: tuple[Server, BotHub], autojump_clock: object
) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "alice") as alice:
        await _lobby(alice)
        async with running_worker(server, bot_hub) as (_worker, kill):
            bots = [(await alice.request("bot.add", bot="idle"))["peer_id"] for _ in range(2)]
            kill.cancel()
            left = {(await alice.next_event("peer.left"))["peer_id"] for _ in bots}
        assert left == set(bots)
        assert bot_hub.scheduler.workers == {} and bot_hub.scheduler.jobs == {}
        for pid in bots:
            assert pid not in server.hub.sessions  # ended at once, no resume grace
        with pytest.raises(RemoteError) as info:
            await alice.request("bot.add", bot="idle")
        assert info.value.code == "bot_unknown"


async def test_disconnect_reason_is_disconnected(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "alice") as alice:
        await _lobby(alice)
        async with running_worker(server, bot_hub) as (_worker, kill):
            await alice.request("bot.add", bot="idle")
            kill.cancel()
            left = await alice.next_event("peer.left")
        assert left["reason"] == "disconnected"


async def test_crashed_bot_is_restarted_and_rejoins(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    CrashOnceBot.crashes_left, CrashOnceBot.runs = 2, 0
    async with open_client(server, "alice") as alice, running_worker(server, bot_hub) as (worker, _):
        lobby_id = await _lobby(alice)
        added = await alice.request("bot.add", bot="crashy")
        await trio.sleep(10)
        assert CrashOnceBot.runs == 3  # crashed twice, restarted twice by the supervisor
        job = worker.jobs[added["job_id"]]
        assert job.sessions == 3 and job.peer_id == added["peer_id"]  # resumed: same peer id
        session = server.hub.sessions[added["peer_id"]]
        assert session.lobby_id == lobby_id and session.conn is not None
        assert bot_hub.scheduler.jobs[added["job_id"]].peer_id == added["peer_id"]
        lobby = server.hub.lobbies[lobby_id]
        assert list(lobby.members) == [alice.peer_id, added["peer_id"]]


async def test_bot_that_keeps_crashing_is_given_up(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    CrashOnceBot.crashes_left, CrashOnceBot.runs = 100, 0
    async with open_client(server, "alice") as alice, running_worker(server, bot_hub) as (worker, _):
        await _lobby(alice)
        added = await alice.request("bot.add", bot="crashy")
        left = await alice.next_event("peer.left", timeout=60)
        assert left["peer_id"] == added["peer_id"] and left["reason"] == "disconnected"
        assert CrashOnceBot.runs == 4  # first run + max_restarts (3)
        assert worker.jobs == {} and bot_hub.scheduler.jobs == {}


async def test_failing_worker_trips_breaker_and_add_retries_elsewhere(
    hub_server: tuple[Server, BotHub], autojump_clock: object
) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "bad", kind="bot", worker_token="sekret") as bad:
        await bad.request("worker.register", token="sekret", capacity=10, bots=[{"name": "idle"}])

        async def refuse_all() -> None:
            async for event in bad.events:
                if event["type"] == "worker.start":
                    await bad.send({"type": "worker.failed", "job_id": event["job"]["job_id"], "code": "boom",
                                    "message": "no", "retryable": True})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refuse_all)
            async with open_client(server, "alice") as alice, running_worker(server, bot_hub, capacity=10):
                await _lobby(alice)
                bad_worker = bot_hub.scheduler.worker_of(next(iter(server.connections)))
                bad_worker = next(w for w in bot_hub.scheduler.workers.values() if w.name == "worker")
                for _ in range(5):  # the empty bad worker is least loaded: tried first until its breaker opens
                    assert (await alice.request("bot.add", bot="idle"))["type"] == "bot.added"
                assert bot_hub.breaker_of(bad_worker).state is CircuitState.OPEN
                assert bad_worker.load == 0
                good = next(w for w in bot_hub.scheduler.workers.values() if w.name == "w")
                assert good.load == 5
            nursery.cancel_scope.cancel()


async def test_slow_worker_times_out_and_add_retries(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "mute", kind="bot", worker_token="sekret") as mute:
        await mute.request("worker.register", token="sekret", capacity=10, bots=[{"name": "idle"}])
        async with open_client(server, "alice") as alice, running_worker(server, bot_hub, capacity=1):
            await _lobby(alice)
            start = trio.current_time()
            added = await alice.request("bot.add", bot="idle", timeout=30)
            assert added["type"] == "bot.added"
            assert trio.current_time() - start >= 5.0  # the mute worker's start_timeout, then the good one
            stop = await mute.next_event("worker.stop")
            assert stop["job_id"] != added["job_id"]


async def test_bot_leaves_when_no_human_is_left(hub_server: tuple[Server, BotHub], autojump_clock: object) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "alice") as alice, running_worker(server, bot_hub) as (worker, _):
        lobby_id = await _lobby(alice)
        async with open_client(server, "bob") as bob:
            await bob.join(lobby_id)
            added = await bob.request("bot.add", bot="idle")
            await bob.leave()
            await trio.sleep(1)
            assert server.hub.sessions[added["peer_id"]].lobby_id == lobby_id  # alice is still there
        await alice.leave()
        await trio.sleep(1)
        assert lobby_id not in server.hub.lobbies  # the bot left, so the ephemeral lobby was deleted
        assert bot_hub.scheduler.jobs == {} and worker.jobs == {}


async def test_requester_gone_mid_start_releases_capacity(autojump_clock: object) -> None:
    async with open_test_server(seed=7) as server:
        await _requester_gone(server, install_bot_hub(server, BotHubSettings(start_timeout=60.0,
                                                                             worker_token="sekret")))


async def _requester_gone(server: Server, bot_hub: BotHub) -> None:
    async with open_client(server, "mute", kind="bot", worker_token="sekret") as mute:
        await mute.request("worker.register", token="sekret", capacity=1, bots=[{"name": "idle"}])
        async with open_client(server, "alice") as alice:
            await _lobby(alice)
            await alice.send({"type": "bot.add", "id": 1, "bot": "idle"})
            start = await mute.next_event("worker.start")
            worker = next(iter(bot_hub.scheduler.workers.values()))
            assert worker.load == 1
        # alice's socket closed; the server notices at its next heartbeat (15 s) and cancels her pending
        # bot.add, long before the 60 s start timeout
        await trio.sleep(20)
        assert worker.load == 0
        assert (await mute.next_event("worker.stop"))["job_id"] == start["job"]["job_id"]


async def test_bot_joins_password_protected_lobby_with_a_ticket(
    hub_server: tuple[Server, BotHub], autojump_clock: object
) -> None:
    server, bot_hub = hub_server
    async with open_client(server, "alice") as alice, open_client(server, "eve") as eve, \
            running_worker(server, bot_hub, capacity=2):
        lobby = await alice.create_lobby("locked", password="door-code")
        await alice.join(lobby["id"], password="door-code")
        added = await alice.request("bot.add", bot="idle")
        joined = await alice.next_event("peer.joined")
        assert joined["peer"]["peer_id"] == added["peer_id"]
        # tickets are bound to their lobby, expire, and are no password for anyone else
        ticket = server.hub.tickets.grant(lobby["id"], trio.current_time(), ttl=60)
        other = await eve.create_lobby("other", password="other-code")
        with pytest.raises(RemoteError) as info:
            await eve.join(other["id"], ticket=ticket)
        assert info.value.code == "wrong_password"
        with pytest.raises(RemoteError) as info:
            await eve.join(lobby["id"], ticket="forged")
        assert info.value.code == "wrong_password"
        await trio.sleep(61)
        with pytest.raises(RemoteError) as info:
            await eve.join(lobby["id"], ticket=ticket)
        assert info.value.code == "wrong_password"


async def test_bot_add_does_not_hold_up_the_requesters_other_requests(
    hub_server: tuple[Server, BotHub], autojump_clock: object
) -> None:
    server, _ = hub_server
    async with open_client(server, "mute", kind="bot", worker_token="sekret") as mute, \
            open_client(server, "alice") as alice:
        await mute.request("worker.register", token="sekret", capacity=10, bots=[{"name": "idle"}])
        await _lobby(alice)
        outcome: list[str] = []

        async def add() -> None:
            try:
                await alice.request("bot.add", bot="idle", timeout=60)
            except RemoteError as exc:
                outcome.append(exc.code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(add)
            await mute.next_event("worker.start")  # the bot is starting (and the worker will never answer)
            start = trio.current_time()
            assert (await alice.request("ping"))["type"] == "pong"  # answered while bot.add waits
            assert trio.current_time() - start < 0.1 and not outcome
        assert outcome == ["bot_start_failed"]
