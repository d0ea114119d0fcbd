"""Every fault kind through the real server (in-process, autojump clock), via the pytest plugin fixtures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing
import trio_websocket

from voicebot import faults
from voicebot.client import RemoteError
from voicebot.errors import PersistenceError
from voicebot.server import Server
from voicebot.store import open_store
from voicebot.testing import open_client
from voicebot.testing.pytest_plugin import FaultActivator


def _plan(point: str, at: int, fault: faults.Fault) -> faults.Plan:
    return faults.Plan(rules=[faults.Rule(point=point, at=at, fault=fault)])


async def test_recv_drop_loses_the_request_but_not_the_connection(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("ws.recv", 2, faults.drop())) as run:  # hit 1 is the hello
        async with open_client(voicebot_server, "alice") as c:
            with pytest.raises(trio.TooSlowError):
                await c.request("lobby.list", timeout=1.0)
            assert (await c.request("ping"))["type"] == "pong"
    assert run.injections[("ws.recv", "drop")] == 1


async def test_recv_duplicate_runs_the_request_twice(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("ws.recv", 2, faults.duplicate())):
        async with open_client(voicebot_server, "alice") as c:
            await c.send({"type": "lobby.list", "id": 7})
            first = await c.next_event("lobby.list")
            second = await c.next_event("lobby.list")
            assert first == second and first["reply_to"] == 7


async def test_recv_corrupt_is_a_validation_error(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("ws.recv", 2, faults.corrupt())) as run:
        async with open_client(voicebot_server, "alice") as c:
            await c.send({"type": "lobby.list", "id": 7})
            error = await c.next_event("error")
            assert error["code"] in {"invalid_json", "invalid_message", "unknown_type"}
            assert error["category"] == "validation"
            assert (await c.request("ping"))["type"] == "pong"  # LOW: the connection lives
    assert [k for _, k, _ in run.journal.entries()].count("error") == 1


async def test_dispatch_value_error_closes_only_that_connection(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("hub.dispatch", 3, faults.raises(ValueError, "planted"))):  # hellos are hits 1, 2
        async with open_client(voicebot_server, "a") as a, open_client(voicebot_server, "b") as b:
            with pytest.raises(RemoteError) as info:
                await a.request("lobby.list")
            assert (info.value.code, info.value.severity) == ("internal_error", 3)
            reason = await a.wait_closed(timeout=5)
            assert reason is not None and reason.code == 1011
            assert (await b.request("ping"))["type"] == "pong"
            lobby = await b.create_lobby("still fine")
            assert (await b.join(lobby["id"]))["lobby"]["members"] == 1
    stats = voicebot_server.errors.get_error_statistics()
    assert stats["by_severity"] == {"high": 1} and stats["closes"] == {"1011": 1}


async def test_dispatch_memory_error_is_critical(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("hub.dispatch", 2, faults.raises(MemoryError))):
        async with open_client(voicebot_server, "a") as a:
            with pytest.raises(RemoteError) as info:
                await a.request("lobby.list")
            assert info.value.code == "out_of_memory"
            assert (await a.wait_closed(timeout=5)).code == 1011  # type: ignore[union-attr]
    stats = voicebot_server.errors.get_error_statistics()
    assert stats["healthy"] is False and "system" in stats["unhealthy"]


async def test_dispatch_too_slow_is_medium_and_resends_state(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("hub.dispatch", 2, faults.raises(trio.TooSlowError))):
        async with open_client(voicebot_server, "a") as a:
            with pytest.raises(RemoteError) as info:
                await a.request("lobby.list")
            assert (info.value.code, info.value.severity) == ("timeout", 2)
            state = await a.next_event("lobby.state")
            assert state == {"type": "lobby.state", "lobby": None, "peers": []}
            assert (await a.request("ping"))["type"] == "pong"
    assert voicebot_server.errors.get_error_statistics()["recoveries"] == {"resend_state": 1}


async def test_dispatch_delay_uses_the_virtual_clock(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("hub.dispatch", 2, faults.delay(4.0))):
        async with open_client(voicebot_server, "a") as a:
            before = trio.current_time()
            assert (await a.request("ping"))["type"] == "pong"
            assert trio.current_time() - before == pytest.approx(4.0)


async def test_disconnect_enters_grace_and_resumes(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("hub.dispatch", 2, faults.disconnect("test"))) as run:
        async with open_client(voicebot_server, "a") as a:
            peer, token = a.peer_id, a.resume_token
            with pytest.raises(trio_websocket.ConnectionClosed):  # no error reply: the connection just vanishes
                await a.request("lobby.list", timeout=1.0)
            assert a.closed is not None and a.closed.code == 1006  # abnormal: no close frame
        await trio.testing.wait_all_tasks_blocked()
        assert peer is not None and token is not None
        session = voicebot_server.hub.sessions[peer]
        assert session.conn is None and session.grace_deadline is not None
        async with open_client(voicebot_server, "a", resume=token) as again:
            assert again.welcome["resumed"] is True and again.peer_id == peer
    assert voicebot_server.errors.total == 0  # a network drop is not an error
    assert ("hub.dispatch", "disconnect") in run.injections


async def test_writer_drop_and_send_hang(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    plan = faults.Plan(rules=[
        faults.Rule(point="writer.send", at=2, fault=faults.drop()),  # 1 is the welcome
        faults.Rule(point="ws.send", at=2, fault=faults.hang()),  # the welcome was 1, the dropped pong none
    ])
    with fault_plan(plan):
        async with open_client(voicebot_server, "a") as a:
            with pytest.raises(trio.TooSlowError):
                await a.request("ping", timeout=1.0)  # its pong was dropped on the way out
            start = trio.current_time()
            await a.send({"type": "ping", "id": 99})  # its pong hangs in the send: cut by the send deadline
            reason = await a.wait_closed(timeout=120)
            assert reason is not None and reason.code == 1006  # the stream was aborted mid-frame
            interval = voicebot_server.settings.heartbeat_interval
            assert trio.current_time() - start == pytest.approx(2 * interval)


async def test_heartbeat_hang_closes_4002(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan(_plan("heartbeat.ping", 1, faults.hang())):
        async with open_client(voicebot_server, "a") as a:
            reason = await a.wait_closed(timeout=120)
            assert reason is not None and reason.code == 4002


async def test_store_points_map_like_real_failures(tmp_path: Path) -> None:
    """Real SQLiteStore on a file (worker threads, real clock): injected failures go through the same mapping."""
    locked = faults.raises(sqlite3.OperationalError, "database is locked")
    plan = faults.Plan(rules=[faults.Rule(point="store.write", at=1, fault=locked),
                              faults.Rule(point="store.read", at=2, fault=locked)])
    async with open_store(tmp_path / "t.db") as store:
        with faults.activate(plan, seed=1) as run:
            with pytest.raises(PersistenceError) as info:
                await store.append_audit("first")
            assert info.value.code == "database_busy" and info.value.context["operation"] == "append_audit"
            second = await store.append_audit("second")
            assert [e.event for e in await store.list_audit()] == ["second"]  # the failed write left nothing
            with pytest.raises(PersistenceError):
                await store.list_audit()
        assert run.injections == {("store.write", "raise"): 1, ("store.read", "raise"): 1}
        assert [e.id for e in await store.list_audit()] == [second]
