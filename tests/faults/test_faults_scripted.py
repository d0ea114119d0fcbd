"""Scripted plans: exact hit selection and the behaviour of every fault kind."""

from __future__ import annotations

import json
import sqlite3

import pytest
import trio

from voicebot import faults
from voicebot.errors import PersistenceError, Severity, WebSocketError, classify

LOCKED = faults.raises(sqlite3.OperationalError, "database is locked")


def plan_of(*rules: faults.Rule) -> faults.Plan:
    return faults.Plan(rules=rules)


async def fired_hits(plan: faults.Plan, name: str, count: int) -> list[int]:
    """Hit numbers (1-based) at which ``point(name)`` raised, over ``count`` hits."""
    fired: list[int] = []
    with faults.activate(plan, seed=7):
        for n in range(1, count + 1):
            try:
                await faults.point(name)
            except sqlite3.OperationalError:
                fired.append(n)
    return fired


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"at": 3}, [3]),
        ({"at": [2, 5, 9]}, [2, 5, 9]),
        ({"first": 3, "last": 5}, [3, 4, 5]),
        ({"first": 10}, [10, 11, 12]),
        ({"every": 4}, [4, 8, 12]),
        ({"every": 5, "first": 2}, [2, 7, 12]),
        ({"every": 2, "first": 3, "last": 8}, [3, 5, 7]),
        ({"first": 1, "times": 2}, [1, 2]),
        ({"every": 3, "times": 1}, [3]),
    ],
)
async def test_scripted_hit_selection(kwargs: dict[str, object], expected: list[int]) -> None:
    rule = faults.Rule(point="store.write", fault=LOCKED, **kwargs)  # type: ignore[arg-type]
    assert await fired_hits(plan_of(rule), "store.write", 12) == expected


async def test_other_points_and_glob_counting() -> None:
    plan = plan_of(faults.Rule(point="ws.*", at=2, fault=faults.raises(OSError, "boom")))
    with faults.activate(plan) as run:
        await faults.point("store.write")
        await faults.point("store.write")
        await faults.point("ws.send")
        await faults.point("ws.recv")  # hits are counted per concrete point name
        with pytest.raises(OSError, match="boom"):
            await faults.point("ws.send")
        with pytest.raises(OSError, match="boom"):
            await faults.point("ws.recv")
        await faults.point("ws.recv")
    assert run.stats()["hits"] == {"store.write": 2, "ws.recv": 3, "ws.send": 2}
    assert run.stats()["injections"] == {"ws.recv": {"raise": 1}, "ws.send": {"raise": 1}}


async def test_first_matching_rule_wins() -> None:
    plan = plan_of(
        faults.Rule(point="store.write", at=1, fault=faults.raises(ValueError, "first")),
        faults.Rule(point="store.*", at=[1, 2], fault=faults.raises(KeyError, "second")),
    )
    with faults.activate(plan):
        with pytest.raises(ValueError, match="first"):
            await faults.point("store.write")
        with pytest.raises(KeyError):
            await faults.point("store.write")


async def test_raise_foreign_exceptions_are_fresh_and_classifiable() -> None:
    plan = plan_of(
        faults.Rule(point="store.write", first=1, fault=LOCKED),
        faults.Rule(point="ws.send", at=1, fault=faults.raises(trio.BrokenResourceError)),
        faults.Rule(point="media.setup", at=1, fault=faults.raises(OSError, 24, "Too many open files")),
    )
    with faults.activate(plan):
        with pytest.raises(sqlite3.OperationalError) as first:
            await faults.point("store.write", key="lobby:1")
        with pytest.raises(sqlite3.OperationalError) as second:
            await faults.point("store.write")
        assert first.value is not second.value
        assert classify(first.value).error.code == "database_busy"
        assert "injected by voicebot.faults at store.write (hit 1)" in first.value.__notes__
        with pytest.raises(trio.BrokenResourceError) as broken:
            await faults.point("ws.send")
        assert classify(broken.value).error.code == "connection_broken"
        with pytest.raises(OSError, match="Too many open files") as oserr:
            await faults.point("media.setup")
        assert oserr.value.errno == 24


async def test_raise_voicebot_error() -> None:
    fault = faults.raises(PersistenceError, "store down", code="store_down", severity=Severity.HIGH)
    plan = plan_of(faults.Rule(point="store.read", at=1, fault=fault))
    with faults.activate(plan), pytest.raises(PersistenceError) as info:
        await faults.point("store.read")
    assert info.value.code == "store_down"
    assert info.value.severity is Severity.HIGH
    assert info.value.context["injected"] == "injected by voicebot.faults at store.read (hit 1)"


async def test_delay_is_exact_on_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    plan = plan_of(faults.Rule(point="writer.send", at=2, fault=faults.delay(2.5)))
    with faults.activate(plan):
        start = trio.current_time()
        await faults.point("writer.send")
        assert trio.current_time() == start
        await faults.point("writer.send")
        assert trio.current_time() - start == pytest.approx(2.5, abs=1e-9)
        await faults.point("writer.send")
        assert trio.current_time() - start == pytest.approx(2.5, abs=1e-9)


async def test_hang_until_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    plan = plan_of(faults.Rule(point="heartbeat.ping", at=1, fault=faults.hang()))
    with faults.activate(plan) as run:
        start = trio.current_time()
        with trio.move_on_after(30) as scope:
            await faults.point("heartbeat.ping")
        assert scope.cancelled_caught
        assert trio.current_time() - start == pytest.approx(30)
        await faults.point("heartbeat.ping")  # the second hit passes
    assert run.stats()["injections"] == {"heartbeat.ping": {"hang": 1}}


async def test_hang_propagates_cancellation_to_nursery(autojump_clock: trio.testing.MockClock) -> None:
    plan = plan_of(faults.Rule(point="bot.call", at=1, fault=faults.hang()))
    reached_after = False

    async def worker() -> None:
        nonlocal reached_after
        await faults.point("bot.call")
        reached_after = True

    with faults.activate(plan):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    assert not reached_after


async def test_disconnect_signal() -> None:
    plan = plan_of(faults.Rule(point="ws.recv", at=1, fault=faults.disconnect("peer vanished")))
    with faults.activate(plan), pytest.raises(faults.Disconnect) as info:
        await faults.point("ws.recv", conn="c1")
    exc = info.value
    assert isinstance(exc, WebSocketError)
    assert exc.severity is Severity.HIGH
    assert exc.context["point"] == "ws.recv"
    assert exc.context["reason"] == "peer vanished"
    assert classify(exc).error is exc


async def test_check_raises_and_disconnects_only() -> None:
    plan = plan_of(
        faults.Rule(point="store.read", at=1, fault=faults.delay(1)),  # not applicable to check(): skipped
        faults.Rule(point="store.read", at=[1, 2], fault=LOCKED),
        faults.Rule(point="ws.close", at=1, fault=faults.disconnect()),
    )
    with faults.activate(plan):
        with pytest.raises(sqlite3.OperationalError):
            faults.check("store.read")
        with pytest.raises(sqlite3.OperationalError):
            faults.check("store.read")
        faults.check("store.read")
        with pytest.raises(faults.Disconnect):
            faults.check("ws.close")


async def test_message_drop_duplicate_pass() -> None:
    plan = plan_of(
        faults.Rule(point="ws.recv", at=2, fault=faults.drop()),
        faults.Rule(point="ws.recv", at=3, fault=faults.duplicate()),
        faults.Rule(point="ws.recv", at=4, fault=faults.raises(trio.BrokenResourceError)),
        faults.Rule(point="ws.recv", at=5, fault=faults.hang()),  # not applicable to message(): skipped
    )
    with faults.activate(plan) as run:
        assert faults.message("ws.recv", "a") == ["a"]
        assert faults.message("ws.recv", "b") == []
        assert faults.message("ws.recv", "c") == ["c", "c"]
        with pytest.raises(trio.BrokenResourceError):
            faults.message("ws.recv", "d")
        assert faults.message("ws.recv", "e") == ["e"]
    assert run.stats()["injections"] == {"ws.recv": {"drop": 1, "duplicate": 1, "raise": 1}}


async def test_point_ignores_message_faults() -> None:
    plan = plan_of(faults.Rule(point="ws.send", first=1, fault=faults.drop()))
    with faults.activate(plan) as run:
        await faults.point("ws.send")
    assert run.stats()["total_injections"] == 0


@pytest.mark.parametrize(
    "msg",
    [
        '{"type": "hello", "token": "abc"}',
        "x",
        "",
        b"\x00\x01binary frame",
        bytearray(b"ab"),
        b"",
        {"type": "chat", "text": "hi", "seq": 3, "meta": {"a": [1, 2]}},
        {},
        [1, "two", {"three": 3}],
    ],
)
async def test_corrupt_changes_deterministically_without_mutating(msg: object) -> None:
    plan = plan_of(faults.Rule(point="ws.recv", first=1, fault=faults.corrupt()))
    original = json.dumps(msg, sort_keys=True) if not isinstance(msg, bytes | bytearray) else bytes(msg)
    outputs = []
    for _ in range(2):
        with faults.activate(plan, seed=3):
            outputs.append([faults.message("ws.recv", msg)[0] for _ in range(20)])
    assert outputs[0] == outputs[1]
    for corrupted in outputs[0]:
        assert corrupted != msg
        assert type(corrupted) is type(msg)
    if isinstance(msg, bytes | bytearray):
        assert bytes(msg) == original
    else:
        assert json.dumps(msg, sort_keys=True) == original
    with faults.activate(plan, seed=4):
        other = [faults.message("ws.recv", msg)[0] for _ in range(20)]
    if msg not in ("", b"", {}):  # tiny inputs have few possible corruptions
        assert other != outputs[0]


async def test_corrupt_str_json_usually_breaks_parsing() -> None:
    text = json.dumps({"type": "hello", "session": "s-123", "payload": {"k": "v" * 20}})
    plan = plan_of(faults.Rule(point="ws.recv", first=1, fault=faults.corrupt()))
    broken = 0
    with faults.activate(plan, seed=11):
        for _ in range(100):
            (corrupted,) = faults.message("ws.recv", text)
            try:
                json.loads(corrupted)
            except json.JSONDecodeError:
                broken += 1
    assert broken >= 50


async def test_corrupt_unsupported_type_passes_through() -> None:
    marker = object()
    plan = plan_of(faults.Rule(point="ws.recv", at=1, fault=faults.corrupt()))
    with faults.activate(plan) as run:
        assert faults.message("ws.recv", marker) == [marker]
    assert run.journal.entries()[-1][2]["supported"] is False


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="needs an exception"):
        faults.Fault(kind=faults.FaultKind.RAISE)
    with pytest.raises(ValueError, match=">= 0"):
        faults.delay(-1)
    with pytest.raises(TypeError, match="Exception subclass"):
        faults.raises(KeyboardInterrupt)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either 'at'"):
        faults.Rule(point="x", fault=LOCKED, at=1, every=2)
    with pytest.raises(ValueError, match="start at 1"):
        faults.Rule(point="x", fault=LOCKED, at=0)
    with pytest.raises(ValueError, match="last"):
        faults.Rule(point="x", fault=LOCKED, first=5, last=2)
    with pytest.raises(ValueError, match="every must be >= 1"):
        faults.Rule(point="x", fault=LOCKED, every=0)
