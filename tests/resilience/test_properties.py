"""Property-based tests: the sans-IO core and windows, and the Trio breaker on a MockClock."""

from __future__ import annotations

import math
import random

import trio
import trio.testing
from hypothesis import event as event_kind
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.errors import ProviderError, ValidationError
from voicebot.resilience import (
    LEGAL_TRANSITIONS,
    BreakerConfig,
    BreakerCore,
    BreakerEvent,
    BreakerEventKind,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    IllegalStateTransition,
    Outcome,
    Permit,
    TimeWindow,
    WindowType,
)

outcomes = st.lists(st.tuples(st.booleans(), st.booleans(), st.floats(0.0, 3.0)), max_size=200)


@given(size=st.integers(1, 15), items=outcomes)
def test_count_window_matches_last_n_outcomes(size: int, items: list[tuple[bool, bool, float]]) -> None:
    window = CountWindow(size)
    for i, (failed, slow, _dt) in enumerate(items):
        window.record(failed, slow, float(i))
        last = items[max(0, i + 1 - size): i + 1]
        counts = window.counts(float(i))
        assert counts.total == len(last)
        assert counts.failed == sum(f for f, _, _ in last)
        assert counts.slow == sum(s for _, s, _ in last)
        assert counts.slow_failed == sum(f and s for f, s, _ in last)


@given(seconds=st.integers(1, 10), items=outcomes, tail=st.floats(0.0, 20.0))
def test_time_window_matches_outcomes_in_the_last_seconds(
    seconds: int, items: list[tuple[bool, bool, float]], tail: float,
) -> None:
    window = TimeWindow(seconds)
    now = 0.0
    log: list[tuple[float, bool, bool]] = []

    def check(at: float) -> None:
        inside = [(f, s) for t, f, s in log if math.floor(t) > math.floor(at) - seconds]
        counts = window.counts(at)
        assert (counts.total, counts.failed, counts.slow) == (
            len(inside), sum(f for f, _ in inside), sum(s for _, s in inside),
        )

    for failed, slow, dt in items:
        now += dt
        window.record(failed, slow, now)
        log.append((now, failed, slow))
        check(now)
    check(now + tail)


# --- the sans-IO core under random operation sequences ------------------------------------------------------

configs = st.builds(
    BreakerConfig,
    failure_rate_threshold=st.sampled_from([25.0, 50.0, 100.0]),
    slow_call_rate_threshold=st.sampled_from([50.0, 100.0]),
    slow_call_duration=st.sampled_from([0.5, 2.0]),
    sliding_window_type=st.sampled_from(list(WindowType)),
    sliding_window_size=st.integers(1, 6),
    minimum_number_of_calls=st.integers(1, 6),
    wait_duration_in_open_state=st.sampled_from([1.0, 5.0]),
    open_wait_multiplier=st.sampled_from([1.0, 2.0]),
    max_wait_duration_in_open_state=st.sampled_from([None, 8.0]),
    permitted_calls_in_half_open=st.integers(1, 4),
    max_wait_in_half_open=st.sampled_from([0.0, 3.0]),
    failure_threshold=st.sampled_from([None, None, 2]),
)

operations = st.lists(
    st.tuples(st.sampled_from(["acquire"] * 4 + ["finish"] * 4 + ["tick"] * 3 + ["manual"]), st.integers(0, 40)),
    min_size=10, max_size=200,
)

_MANUAL = [*CircuitState, "reset"]
_S = CircuitState
_AUTOMATIC = {(_S.CLOSED, _S.OPEN), (_S.OPEN, _S.HALF_OPEN), (_S.HALF_OPEN, _S.CLOSED), (_S.HALF_OPEN, _S.OPEN)}


def finish(core: BreakerCore, permit: Permit, rng: random.Random, now: float,
           closed_log: list[tuple[bool, bool]]) -> None:
    """End an in-flight call with a random outcome, tracking what the CLOSED window must contain."""
    outcome = rng.choices(list(Outcome), weights=[3, 4, 1, 1])[0]
    generation = core.generation
    state = core.state_at(now)
    counted = (
        state is CircuitState.CLOSED and permit.generation == core.generation
        and outcome in (Outcome.SUCCESS, Outcome.FAILURE)
    )
    core.on_result(permit, outcome, now)
    if core.generation != generation:
        closed_log.clear()
    elif counted:
        closed_log.append((outcome is Outcome.FAILURE, now - permit.started_at >= core.config.slow_call_duration))


@settings(max_examples=300, deadline=None)
@given(config=configs, ops=operations, seed=st.integers(0, 2**32))
def test_core_never_makes_an_illegal_transition(config: BreakerConfig, ops: list[tuple[str, int]], seed: int) -> None:
    rng = random.Random(seed)
    events: list[BreakerEvent] = []
    core = BreakerCore(config, emit=events.append)
    now = 0.0
    in_flight: list[Permit] = []
    closed_log: list[tuple[bool, bool]] = []  # outcomes counted into the current CLOSED window (count-based)
    for op, arg in ops:
        if op == "tick":
            now += arg / 4
        elif op == "acquire":
            permit = core.try_acquire(now)
            if permit is not None:
                in_flight.append(permit)
        elif op == "finish" and in_flight:
            finish(core, in_flight.pop(arg % len(in_flight)), rng, now, closed_log)
        elif op == "manual":
            target = _MANUAL[arg % len(_MANUAL)]
            before = core.state_at(now)
            if target == "reset":
                core.reset(now)
            else:
                assert isinstance(target, CircuitState)
                try:
                    core.transition(target, now)
                except IllegalStateTransition:
                    assert (before, target) not in LEGAL_TRANSITIONS
                    assert core.state_at(now) is before
                    continue
            closed_log.clear()
        state = core.state_at(now)
        if state is CircuitState.CLOSED and config.sliding_window_type is WindowType.COUNT_BASED:
            last = closed_log[-config.sliding_window_size:]
            counts = core.counts(now)
            assert (counts.total, counts.failed, counts.slow) == (
                len(last), sum(f for f, _ in last), sum(s for _, s in last),
            )
        if state is CircuitState.HALF_OPEN:
            in_flight_probes = sum(p.generation == core.generation for p in in_flight)
            assert in_flight_probes <= config.permitted_calls_in_half_open
        metrics = core.metrics(now)
        assert 0 <= metrics["failed_calls"] <= metrics["buffered_calls"]
        assert metrics["time_in_state"] >= 0
    transitions = [e for e in events if e.kind is BreakerEventKind.STATE_TRANSITION]
    event_kind("transitions: " + ",".join(sorted({f"{e.from_state}>{e.to_state}" for e in transitions
                                                  if (e.from_state, e.to_state) in _AUTOMATIC})))
    for event in transitions:
        assert (event.from_state, event.to_state) in LEGAL_TRANSITIONS
    assert [e.at for e in events] == sorted(e.at for e in events)  # lazy transitions keep time order


# --- the Trio breaker, driven on a MockClock from a synchronous @given test -----------------------------------

calls = st.lists(st.tuples(st.floats(0.0, 4.0), st.floats(0.0, 3.0), st.sampled_from(["ok", "fail", "ignore"])),
                 min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(calls=calls, permitted=st.integers(1, 3), window=st.integers(2, 6))
def test_trio_breaker_random_concurrent_calls(calls: list[tuple[float, float, str]], permitted: int,
                                              window: int) -> None:
    async def main() -> None:
        events: list[BreakerEvent] = []
        breaker = CircuitBreaker(
            "prop", sliding_window_size=window, minimum_number_of_calls=2, wait_duration_in_open_state=2.0,
            permitted_calls_in_half_open=permitted, slow_call_duration=2.5, listeners=[events.append],
        )
        probes_in_flight = 0
        max_probes = 0
        results = {"ok": 0, "error": 0, "ignored": 0, "rejected": 0}

        async def body(duration: float, kind: str) -> None:
            nonlocal probes_in_flight, max_probes
            probe = breaker.core.last_state is CircuitState.HALF_OPEN
            probes_in_flight += probe
            max_probes = max(max_probes, probes_in_flight)
            try:
                await trio.sleep(duration)
            finally:
                probes_in_flight -= probe
            if kind == "fail":
                raise ProviderError()
            if kind == "ignore":
                raise ValidationError()

        async def caller(start: float, duration: float, kind: str) -> None:
            await trio.sleep(start)
            try:
                await breaker.call(body, duration, kind)
                results["ok"] += 1
            except CircuitOpenError:
                results["rejected"] += 1
            except ProviderError:
                results["error"] += 1
            except ValidationError:
                results["ignored"] += 1

        async with trio.open_nursery() as nursery:
            for start, duration, kind in calls:
                nursery.start_soon(caller, start, duration, kind)
        assert max_probes <= permitted
        kinds = [e.kind for e in events]
        assert kinds.count(BreakerEventKind.SUCCESS) == results["ok"]
        assert kinds.count(BreakerEventKind.ERROR) == results["error"]
        assert kinds.count(BreakerEventKind.IGNORED_ERROR) == results["ignored"]
        assert kinds.count(BreakerEventKind.NOT_PERMITTED) == results["rejected"]
        assert breaker.metrics()["not_permitted_calls"] == results["rejected"]
        assert sum(results.values()) == len(calls)
        for event in events:
            if event.kind is BreakerEventKind.STATE_TRANSITION:
                assert (event.from_state, event.to_state) in LEGAL_TRANSITIONS

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
