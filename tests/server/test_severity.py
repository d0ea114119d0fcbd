"""Each severity provoked over a real connection: client-visible outcome, statistics, neighbours untouched."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from voicebot.client import RemoteError
from voicebot.errors import Severity, VoiceBotError
from voicebot.protocol import Chat, Request
from voicebot.server import Server
from voicebot.testing import open_client

FAULTS: dict[str, BaseException] = {
    "low": VoiceBotError("just a note", code="test_low", severity=Severity.LOW),
    "medium": trio.TooSlowError(),
    "high": RuntimeError("secret internal detail"),
    "high-custom": VoiceBotError("policy", code="test_high", severity=Severity.HIGH, close_code=4010),
    "critical": MemoryError(),
    "group": ExceptionGroup("nested", [ValueError("a"), ExceptionGroup("inner", [trio.TooSlowError()])]),
}


def inject(server: Server) -> None:
    """Make ``chat`` with text ``boom:<kind>`` raise the chosen exception inside the request handler."""
    original = server.hub.request

    def request(conn: int, req: Request, now: float) -> list[Any]:
        if isinstance(req, Chat) and req.text.startswith("boom:"):
            raise FAULTS[req.text.removeprefix("boom:")]
        return original(conn, req, now)

    server.hub.request = request  # type: ignore[method-assign]


async def test_low_replies_and_continues(server: Server, autojump_clock: object) -> None:
    inject(server)
    async with open_client(server, "a") as a:
        with pytest.raises(RemoteError) as info:
            await a.request("chat", text="boom:low")
        assert (info.value.code, info.value.severity) == ("test_low", Severity.LOW)
        assert (await a.request("ping"))["type"] == "pong"
    assert server.errors.get_error_statistics()["by_severity"] == {"low": 1}


async def test_medium_replies_and_runs_recovery(server: Server, autojump_clock: object) -> None:
    inject(server)
    async with open_client(server, "a") as a:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        with pytest.raises(RemoteError) as info:
            await a.request("chat", text="boom:medium")
        assert (info.value.code, info.value.category, info.value.retryable) == ("timeout", "network", True)
        state = await a.next_event("lobby.state")  # recovery: authoritative state resent
        assert state["lobby"]["id"] == room["id"] and state["peers"] == []
        assert (await a.request("ping"))["type"] == "pong"
    stats = server.errors.get_error_statistics()
    assert stats["recoveries"] == {"resend_state": 1}
    assert stats["by_category"]["network"]["medium"]["timeout"] == 1


@pytest.mark.parametrize(
    ("kind", "code", "close"), [("high", "internal_error", 1011), ("high-custom", "test_high", 4010)]
)
async def test_high_notifies_then_closes_only_that_connection(
    server: Server, autojump_clock: object, kind: str, code: str, close: int
) -> None:
    inject(server)
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        await b.join(room["id"])
        await a.send({"type": "chat", "text": f"boom:{kind}", "id": "x"})
        error = await a.next_event("error")
        assert error["code"] == code and error["severity"] == "high" and error["reply_to"] == "x"
        assert "secret" not in error["message"]
        reason = await a.wait_closed(timeout=5)
        assert reason is not None and reason.code == close
        # the lobby and the neighbour carry on; a is in its resume grace
        await b.chat("still here")
        assert (await b.next_event("chat"))["text"] == "still here"
        assert server.hub.lobbies[room["id"]].members.keys() == {a.peer_id, b.peer_id}
    assert server.errors.get_error_statistics()["closes"] == {str(close): 1}


async def test_critical_closes_and_marks_subsystem_unhealthy(server: Server, autojump_clock: object) -> None:
    inject(server)
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        await a.send({"type": "chat", "text": "boom:critical"})
        assert (await a.next_event("error"))["severity"] == "critical"
        reason = await a.wait_closed(timeout=5)
        assert reason is not None and reason.code == 1011
        assert (await b.request("ping"))["type"] == "pong"
    stats = server.errors.get_error_statistics()
    assert stats["healthy"] is False and "system" in stats["unhealthy"]


async def test_nested_group_reports_most_severe_part(server: Server, autojump_clock: object) -> None:
    inject(server)
    async with open_client(server, "a") as a:
        await a.send({"type": "chat", "text": "boom:group"})
        error = await a.next_event("error")
        assert (error["code"], error["severity"]) == ("internal_error", "high")
        assert (await a.wait_closed(timeout=5)) is not None
    assert server.errors.get_error_statistics()["recent"][-1]["parts"] == 2


async def test_fault_in_one_connection_handler_never_disturbs_another(server: Server, autojump_clock: object) -> None:
    inject(server)
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        room = await b.create_lobby("room")
        await b.join(room["id"])
        async with trio.open_nursery() as nursery:
            async def hammer() -> None:
                for _ in range(5):
                    await a.send({"type": "chat", "text": "boom:medium"})
                    await trio.sleep(0.1)
            nursery.start_soon(hammer)
            for i in range(20):
                await b.chat(f"m{i}")
                assert (await b.next_event("chat"))["text"] == f"m{i}"
        assert (await b.request("ping"))["type"] == "pong"
