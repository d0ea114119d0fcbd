"""Supervisor: restart policies, sliding restart budget, escalation, shutdown."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from voicebot.errors import ProviderError
from voicebot.resilience import Backoff, ChildState, Policy, RestartBudgetExceeded, Supervisor


class Child:
    """A child that fails ``failures`` times after ``run_for`` seconds, then returns (or runs forever)."""

    def __init__(self, failures: int, run_for: float = 0.0, forever_after: bool = False) -> None:
        self.failures = failures
        self.run_for = run_for
        self.forever_after = forever_after
        self.starts: list[float] = []

    async def __call__(self) -> None:
        self.starts.append(trio.current_time())
        await trio.sleep(self.run_for)
        if len(self.starts) <= self.failures:
            raise ProviderError(f"crash {len(self.starts)}")
        if self.forever_after:
            await trio.sleep_forever()


async def test_permanent_child_restarts_until_budget_then_escalates(autojump_clock: trio.testing.MockClock) -> None:
    reported: list[tuple[str, BaseException]] = []
    child = Child(failures=100, run_for=1.0)
    sup = Supervisor(max_restarts=3, within=60.0, backoff=0.5,
                     on_failure=lambda name, exc: reported.append((name, exc)))

    async def run() -> None:
        async with sup:
            sup.start_child("worker", child)
            sup.start_child("bystander", trio.sleep_forever)

    with pytest.raises(RestartBudgetExceeded) as info:
        await run()
    assert child.starts == [0.0, 1.5, 3.0, 4.5]
    assert trio.current_time() == 5.5
    assert [name for name, _ in reported] == ["worker"] * 4
    error = info.value
    assert error.child == "worker"
    assert isinstance(error.__cause__, ProviderError)
    assert error.last_failure is reported[-1][1]
    assert error.code == "restart_budget_exceeded"
    assert sup.children["worker"].state is ChildState.FAILED
    assert sup.children["bystander"].state is ChildState.CANCELLED  # cancelled, not restarted
    assert sup.children["bystander"].restarts == 0


async def test_permanent_child_restarts_after_normal_return(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=0, run_for=2.0)
    with trio.move_on_after(7.0):
        async with Supervisor(max_restarts=10, within=60.0, backoff=1.0) as sup:
            sup.start_child("ticker", child)
    assert child.starts == [0.0, 3.0, 6.0]
    assert sup.children["ticker"].state is ChildState.CANCELLED


async def test_budget_is_a_sliding_window(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=100, run_for=15.0)
    with trio.move_on_after(100.0):
        async with Supervisor(max_restarts=1, within=10.0) as sup:
            sup.start_child("sometimes", child)
    assert child.starts == [0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0]
    assert sup.children["sometimes"].failures == 6
    assert sup.children["sometimes"].restarts == 6


async def test_transient_and_temporary_policies(autojump_clock: trio.testing.MockClock) -> None:
    failures: list[str] = []
    transient = Child(failures=2, run_for=1.0)
    temporary = Child(failures=1, run_for=1.0)
    done_temporary = Child(failures=0, run_for=1.0)
    async with Supervisor(max_restarts=5, within=60.0, backoff=Backoff(base_delay=1.0, jitter="none"),
                          on_failure=lambda name, _exc: failures.append(name)) as sup:
        sup.start_child("transient", transient, policy=Policy.TRANSIENT)
        sup.start_child("temporary", temporary, policy=Policy.TEMPORARY)
        sup.start_child("done", done_temporary, policy=Policy.TEMPORARY)
    assert transient.starts == [0.0, 2.0, 5.0]  # backoff 1 then 2
    assert temporary.starts == [0.0]
    assert sorted(failures) == ["temporary", "transient", "transient"]
    children = sup.children
    assert children["transient"].state is ChildState.EXITED
    assert children["transient"].restarts == 2
    assert children["temporary"].state is ChildState.FAILED
    assert children["done"].state is ChildState.EXITED
    assert trio.current_time() == 6.0


async def test_cancel_shuts_down_without_restarts(autojump_clock: trio.testing.MockClock) -> None:
    a = Child(failures=0, forever_after=True)
    b = Child(failures=1, run_for=1.0, forever_after=True)
    async with Supervisor(max_restarts=3, within=60.0, backoff=1.0) as sup:
        sup.start_child("a", a)
        sup.start_child("b", b)
        await trio.sleep(5.0)
        status = sup.status()
        assert status["children"]["b"]["restarts"] == 1
        assert status["children"]["b"]["last_failure"] == "ProviderError"
        assert status["restarts_in_window"] == 1
        json.dumps(status)
        sup.cancel()
    assert trio.current_time() == 5.0
    assert a.starts == [0.0]
    assert b.starts == [0.0, 2.0]
    assert {c.state for c in sup.children.values()} == {ChildState.CANCELLED}


async def test_stop_child_and_introspection(autojump_clock: trio.testing.MockClock) -> None:
    async with Supervisor() as sup:
        sup.start_child("x", trio.sleep_forever)
        with pytest.raises(ValueError, match="already running"):
            sup.start_child("x", trio.sleep_forever)
        await trio.sleep(1.0)
        sup.stop_child("x")
        await trio.sleep(1.0)
        assert sup.children["x"].state is ChildState.CANCELLED
        sup.start_child("x", trio.sleep, 1.0, policy=Policy.TRANSIENT)  # a stopped name can be reused
    assert sup.children["x"].state is ChildState.EXITED
    assert trio.current_time() == 3.0
    with pytest.raises(RuntimeError):
        sup.start_child("late", trio.sleep_forever)


async def test_failing_on_failure_callback_does_not_break_supervision(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def broken(_name: str, _exc: BaseException) -> None:
        raise RuntimeError("callback bug")

    child = Child(failures=1)
    async with Supervisor(on_failure=broken) as sup:
        sup.start_child("c", child, policy=Policy.TRANSIENT)
    assert sup.children["c"].state is ChildState.EXITED
    assert sup.children["c"].failures == 1
