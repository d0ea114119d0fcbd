"""Inactive points are no-ops; runs are scoped by context variable (with a global fallback)."""

from __future__ import annotations

import contextlib
import timeit

import pytest
import trio
import trio.testing

from voicebot import faults

ALWAYS_RAISE = faults.Plan(rules=[faults.Rule(point="*", first=1, fault=faults.raises(RuntimeError, "injected"))])


async def test_inactive_points_are_no_ops() -> None:
    assert faults.current_run() is None
    awaitable = faults.point("store.write", key="k")
    assert awaitable is faults.point("ws.send")  # a shared, already-completed awaitable: nothing allocated
    await awaitable
    await faults.point("store.write")
    faults.check("store.read")
    msg = {"type": "hello"}
    out = faults.message("ws.recv", msg)
    assert out == [msg]
    assert out[0] is msg
    faults.record("session", state="open")
    faults.record_error(OSError("x"))


async def test_inactive_point_is_not_a_checkpoint() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await faults.point("store.write")  # would raise Cancelled if it checkpointed
        with faults.activate(faults.Plan()):
            await faults.point("store.write")  # a hit that does not fire does not checkpoint either
    assert not scope.cancelled_caught


def test_inactive_point_is_cheap() -> None:
    # Generous bound (real figure is ~60 ns); this only guards against an accidental slow path.
    per_call = min(timeit.repeat("check('store.read')", globals={"check": faults.check}, number=20_000, repeat=3))
    assert per_call / 20_000 < 5e-6


async def test_run_reaches_spawned_tasks() -> None:
    seen: list[faults.FaultRun | None] = []

    async def child() -> None:
        seen.append(faults.current_run())
        with pytest.raises(RuntimeError, match="injected"):
            await faults.point("bot.call")

    with faults.activate(ALWAYS_RAISE) as run:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
    assert seen == [run]
    assert run.stats()["hits"] == {"bot.call": 1}
    assert faults.current_run() is None


async def test_context_runs_do_not_leak_between_servers(autojump_clock: trio.testing.MockClock) -> None:
    results: dict[str, dict[str, object]] = {}

    async def server(label: str, plan: faults.Plan) -> None:
        with faults.activate(plan, seed=len(label)) as run:
            async with trio.open_nursery() as nursery:
                for conn in range(3):
                    nursery.start_soon(connection, conn)
        results[label] = run.stats()

    async def connection(conn: int) -> None:
        for _ in range(5):
            await trio.sleep(1)
            with contextlib.suppress(RuntimeError):
                await faults.point("ws.send", conn=conn)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, "a", ALWAYS_RAISE)
        nursery.start_soon(server, "bb", faults.Plan())
    assert results["a"]["hits"] == {"ws.send": 15}
    assert results["a"]["total_injections"] == 15
    assert results["bb"]["hits"] == {"ws.send": 15}
    assert results["bb"]["total_injections"] == 0


async def test_global_scope_reaches_tasks_started_before_activation(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[faults.FaultRun | None] = []

    async def early() -> None:
        await trio.sleep(1)
        seen.append(faults.current_run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(early)
        nursery.start_soon(early)
        await trio.sleep(0.5)
        with faults.activate(faults.Plan(), scope="context") as ctx_run:
            await trio.sleep(0.25)
        with faults.activate(faults.Plan(), scope="global") as global_run:
            await trio.sleep(1)
    assert ctx_run not in seen
    assert seen == [global_run, global_run]
    assert faults.current_run() is None


async def test_context_run_overrides_global_and_nesting_restores() -> None:
    with faults.activate(faults.Plan(name="outer"), scope="global") as outer:
        assert faults.current_run() is outer
        with faults.activate(faults.Plan(name="inner")) as inner:
            assert faults.current_run() is inner
            with faults.activate(faults.Plan(name="innermost")) as innermost:
                assert faults.current_run() is innermost
            assert faults.current_run() is inner
        assert faults.current_run() is outer
    assert faults.current_run() is None


def test_bad_scope() -> None:
    with pytest.raises(ValueError, match="scope"), faults.activate(scope="thread"):  # type: ignore[arg-type]
        pass


async def test_shared_journal_across_runs() -> None:
    journal = faults.Journal()
    with faults.activate(journal=journal, seed=1):
        faults.record("session", n=1)
    with faults.activate(journal=journal, seed=2):
        faults.record("session", n=2)
    assert [kind for _, kind, _ in journal.entries()] == ["fault.run", "session", "fault.run", "session"]


async def test_context_keys_may_use_any_name() -> None:
    plan = faults.Plan(rules=[faults.Rule(point="ws.recv", at=1, fault=faults.drop())])
    with faults.activate(plan) as run:
        await faults.point("store.write", name="n", msg="m", ctx="c")
        faults.check("store.read", name="n")
        assert faults.message("ws.recv", "x", name="n", msg="m") == []
    assert run.journal.entries()[-1][2]["ctx"] == {"msg": "m", "name": "n"}
