"""LoginThrottle with explicit clocks: exact lockout numbers, windows, resets and bounded memory."""

from __future__ import annotations

import sys

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.auth import LoginThrottle, ThrottlePolicy

POLICY = ThrottlePolicy(max_failures=3, window=60.0, base_lockout=10.0, max_lockout=40.0, reset_after=100.0)


def fail_n(throttle: LoginThrottle, n: int, name: str | None, addr: str | None, start: float) -> list[float | None]:
    return [throttle.record_failure(name, addr, start + i) for i in range(n)]


def test_module_is_sans_io() -> None:
    import voicebot.auth._throttle as module  # noqa: PLC0415

    assert "trio" not in vars(module)
    assert "time" not in vars(module)
    assert "voicebot.auth._throttle" in sys.modules


def test_lockout_after_k_failures_with_exact_numbers() -> None:
    t = LoginThrottle(POLICY)
    assert t.check("alice", "1.2.3.4", 0.0) is None
    assert fail_n(t, 3, "alice", "1.2.3.4", 0.0) == [None, None, 10.0]  # failures at 0, 1, 2
    assert t.check("alice", "1.2.3.4", 2.0) == 10.0
    assert t.check("alice", "1.2.3.4", 11.5) == pytest.approx(0.5)
    assert t.check("ALICE ", "9.9.9.9", 5.0) is None  # a locked name is not locked against a clean address
    assert t.check("ALICE ", None, 5.0) == 7.0  # (address unknown: locked)
    t.record_failure(None, "9.9.9.9", 5.0)
    assert t.check("ALICE ", "9.9.9.9", 5.0) == 7.0  # ... but it is against any address that has failed
    assert t.check("bob", "1.2.3.4", 5.0) == 7.0  # and the address for any name
    assert t.check("bob", "5.5.5.5", 5.0) is None
    assert t.check("alice", "1.2.3.4", 12.0) is None


def test_lockout_grows_exponentially_and_is_capped() -> None:
    t = LoginThrottle(POLICY)
    now = 0.0
    durations = []
    for _ in range(5):
        results = fail_n(t, 3, "alice", None, now)
        durations.append(results[-1])
        now += 2
        wait = t.check("alice", None, now)
        assert wait == results[-1]
        assert wait is not None
        now += wait
        assert t.check("alice", None, now) is None
    assert durations == [10.0, 20.0, 40.0, 40.0, 40.0]


def test_failures_outside_window_do_not_count() -> None:
    t = LoginThrottle(POLICY)
    assert t.record_failure("alice", None, 0.0) is None
    assert t.record_failure("alice", None, 30.0) is None
    assert t.record_failure("alice", None, 60.0) is None  # the one at 0 is exactly W old: expired
    assert t.check("alice", None, 60.0) is None
    assert t.record_failure("alice", None, 61.0) == 10.0  # 30, 60, 61 within 60 s


def test_failures_during_lockout_are_not_counted() -> None:
    t = LoginThrottle(POLICY)
    fail_n(t, 3, "alice", None, 0.0)  # locked until 12
    for i in range(10):
        assert t.record_failure("alice", None, 3.0 + i * 0.1) is None
    assert t.check("alice", None, 11.0) == 1.0
    assert t.record_failure("alice", None, 12.0) is None  # a fresh count starts after the lockout
    assert t.record_failure("alice", None, 13.0) is None
    assert t.record_failure("alice", None, 14.0) == 20.0


def test_success_resets_name_but_not_address() -> None:
    t = LoginThrottle(POLICY)
    fail_n(t, 2, "alice", "1.2.3.4", 0.0)
    t.record_success("alice", "1.2.3.4", 2.0)
    assert t.record_failure("alice", "1.2.3.4", 3.0) == 10.0  # the address reached 3; the name is at 1
    assert t.check("alice", "5.5.5.5", 4.0) is None
    assert t.check("carol", "1.2.3.4", 4.0) == 9.0


def test_success_resets_lockout_level() -> None:
    t = LoginThrottle(POLICY)
    fail_n(t, 3, "alice", None, 0.0)  # level 1, until 12
    t.record_success("alice", None, 12.0)
    assert fail_n(t, 3, "alice", None, 13.0)[-1] == 10.0  # level 1 again, not 20


def test_quiet_period_boundary() -> None:
    t = LoginThrottle(POLICY)
    fail_n(t, 3, "alice", None, 0.0)  # level 1, last failure at 2, locked until 12
    assert fail_n(t, 3, "alice", None, 101.0)[-1] == 20.0  # quiet 99 s < reset_after: level 2
    u = LoginThrottle(POLICY)
    fail_n(u, 3, "alice", None, 0.0)
    assert fail_n(u, 3, "alice", None, 102.0)[-1] == 10.0  # quiet exactly 100 s: forgotten


def test_ipv6_addresses_grouped_by_64_and_mapped_v4() -> None:
    t = LoginThrottle(POLICY)
    t.record_failure(None, "2001:db8:1:2::1", 0.0)
    t.record_failure(None, "2001:db8:1:2:ffff::9", 1.0)
    assert t.record_failure(None, "2001:db8:1:2:abcd::", 2.0) == 10.0
    assert t.check(None, "2001:db8:1:2::77", 3.0) == 9.0
    assert t.check(None, "2001:db8:1:3::1", 3.0) is None
    fail_n(t, 3, None, "::ffff:10.0.0.1", 0.0)
    assert t.check(None, "10.0.0.1", 3.0) == 9.0
    assert t.size == (0, 2)


def test_check_never_allocates() -> None:
    t = LoginThrottle(POLICY)
    for i in range(1000):
        assert t.check(f"n{i}", f"10.0.{i // 256}.{i % 256}", float(i)) is None
    assert t.size == (0, 0)


def test_table_size_is_capped_under_flood() -> None:
    policy = attrs.evolve(POLICY, max_entries=50)
    t = LoginThrottle(policy)
    for i in range(10_000):
        t.record_failure(f"name{i}", f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", float(i) / 100)
    assert t.size == (50, 50)


def test_eviction_drops_stale_entries_first_then_least_recent() -> None:
    policy = attrs.evolve(POLICY, max_entries=3)
    t = LoginThrottle(policy)
    t.record_failure("stale", None, 0.0)
    fail_n(t, 3, "victim", None, 90.0)  # locked until 102
    t.record_failure("x", None, 95.0)
    t.record_failure("y", None, 100.0)  # full: "stale" (100 s quiet) goes, the locked victim stays
    assert list(t._names) == ["victim", "x", "y"]
    assert t.check("victim", None, 100.0) == 2.0
    t.record_failure("z", None, 101.0)  # full, nothing stale: the oldest *unlocked* key is evicted
    assert list(t._names) == ["victim", "y", "z"]
    t.record_failure("w", None, 103.0)  # victim's lockout is over: plain least-recent eviction
    assert list(t._names) == ["y", "z", "w"]


def test_eviction_falls_back_to_lru_when_all_locked() -> None:
    t = LoginThrottle(attrs.evolve(POLICY, max_entries=2))
    fail_n(t, 3, "a", None, 0.0)
    fail_n(t, 3, "b", None, 0.0)
    t.record_failure("c", None, 3.0)
    assert list(t._names) == ["b", "c"]


def test_prune() -> None:
    t = LoginThrottle(POLICY)
    t.record_failure("a", "1.1.1.1", 0.0)
    fail_n(t, 3, "b", None, 50.0)
    assert t.prune(99.0) == 0
    assert t.prune(100.0) == 2  # "a" and 1.1.1.1
    assert t.size == (1, 0)
    assert t.prune(152.0) == 1
    assert t.size == (0, 0)


def test_long_inputs_are_truncated_keys() -> None:
    t = LoginThrottle(POLICY)
    fail_n(t, 3, "x" * 10_000, "y" * 10_000, 0.0)
    assert t.check("x" * 256 + "different tail", None, 3.0) == 9.0
    assert t.check(None, "y" * 256, 3.0) == 9.0


def test_policy_validation_and_default() -> None:
    default = ThrottlePolicy()
    assert (default.max_failures, default.window, default.base_lockout, default.max_lockout) == (5, 300.0, 30.0, 3600.0)
    assert [default.lockout(n) for n in (1, 2, 3, 8, 1000)] == [30.0, 60.0, 120.0, 3600.0, 3600.0]
    with pytest.raises(ValueError, match="max_failures"):
        ThrottlePolicy(max_failures=0)
    with pytest.raises(ValueError, match="window"):
        ThrottlePolicy(window=0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=8), st.integers(0, 2**32 - 1), st.floats(0, 5, allow_nan=False), st.booleans()),
        max_size=300,
    )
)
def test_property_bounded_and_never_negative(events: list[tuple[str, int, float, bool]]) -> None:
    policy = attrs.evolve(POLICY, max_entries=20)
    t = LoginThrottle(policy)
    now = 0.0
    for name, addr_int, dt, success in events:
        now += dt
        addr = ".".join(str((addr_int >> s) & 255) for s in (24, 16, 8, 0))
        wait = t.check(name, addr, now)
        assert wait is None or 0 < wait <= policy.max_lockout
        if wait is None:
            if success:
                t.record_success(name, addr, now)
            else:
                started = t.record_failure(name, addr, now)
                assert started is None or policy.base_lockout <= started <= policy.max_lockout
        names, addrs = t.size
        assert names <= 20
        assert addrs <= 20
