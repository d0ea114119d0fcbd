"""Issue 12 rows 5, 9, 15: throttles count attempts in flight, and lock the attacker's address before the victim."""

from __future__ import annotations

import random

import pytest

from voicebot.auth import LoginThrottle, ThrottlePolicy, address_key

POLICY = ThrottlePolicy(max_failures=5, name_max_failures=10, window=300.0, base_lockout=30.0)


@pytest.mark.parametrize("seed", range(20))
def test_concurrent_attempts_never_exceed_the_limit(seed: int) -> None:
    """Any interleaving of begin/finish over any mix of names and addresses, all within one window: the checks run
    per address never exceed max_failures; checks per name stay within name_max_failures while the name is not
    locked, and a locked name admits only addresses with no failure on record (one guess each)."""
    rng = random.Random(seed)
    t = LoginThrottle(POLICY)
    names = ["alice", "ALICE ", "bob"][: rng.randint(1, 3)]
    addrs = [f"10.0.0.{i}" for i in range(rng.randint(1, 30))] + ["2001:db8::1", "2001:db8::2"]
    in_flight: list[tuple[str, str]] = []
    ran_addr: dict[str, int] = {}
    failed: set[str] = set()
    now = 0.0
    for _ in range(600):
        now += rng.random() * 0.05
        if in_flight and rng.random() < 0.4:
            name, addr = in_flight.pop(rng.randrange(len(in_flight)))
            t.finish(name, addr, now, success=False)
            failed.add(address_key(addr))
            continue
        name, addr = rng.choice(names), rng.choice(addrs)
        key = address_key(addr)
        name_locked = t.check(name, None, now) is not None
        if t.begin(name, addr, now) is None:
            in_flight.append((name, addr))
            ran_addr[key] = ran_addr.get(key, 0) + 1
            assert not (name_locked and key in failed), "a locked name admitted an address that had failed"
            assert sum(1 for n, _ in in_flight if n.strip().casefold() == name.strip().casefold()) <= POLICY.name_limit
    assert now < POLICY.window
    assert max(ran_addr.values()) <= POLICY.max_failures


def test_120_parallel_guesses_from_one_address_cost_five_checks() -> None:
    t = LoginThrottle(POLICY)
    admitted = [t.begin("carol", "6.6.6.6", 0.0) for _ in range(120)]
    assert admitted.count(None) == 5
    refused = [w for w in admitted if w is not None]
    assert all(w == POLICY.inflight_retry for w in refused)
    for _ in range(5):
        t.finish("carol", "6.6.6.6", 1.0, success=False)
    assert t.check("carol", "6.6.6.6", 1.0) == 30.0  # the address is locked ...
    assert t.begin("carol", "7.7.7.7", 1.0) is None  # ... the victim (another, clean address) is not
    t.finish("carol", "7.7.7.7", 1.0, success=True)
    assert t.in_flight == 0


def test_address_locks_before_name_and_name_spares_clean_addresses() -> None:
    """Row 15: failures from anywhere must not lock the real user out."""
    t = LoginThrottle(POLICY)
    for i in range(10):  # a distributed guesser: 10 addresses, one failure each
        assert t.begin("carol", f"6.6.6.{i}", float(i)) is None
        t.finish("carol", f"6.6.6.{i}", float(i), success=False)
    assert t.check("carol", "6.6.6.3", 10.0) is not None  # the name is locked for addresses that failed
    assert t.check("carol", "7.7.7.7", 10.0) is None  # never for one that has not
    assert t.begin("carol", "7.7.7.7", 10.0) is None
    t.finish("carol", "7.7.7.7", 10.0, success=True)


def test_finish_without_outcome_only_releases() -> None:
    t = LoginThrottle(POLICY)
    for _ in range(5):
        assert t.begin("carol", "6.6.6.6", 0.0) is None
    assert t.begin("carol", "6.6.6.6", 0.0) == POLICY.inflight_retry
    for _ in range(5):
        t.finish("carol", "6.6.6.6", 0.0, success=None)  # e.g. the client went away mid-check
    assert t.in_flight == 0 and t.size == (0, 0)
    assert t.begin("carol", "6.6.6.6", 0.0) is None


def test_failures_and_in_flight_add_up() -> None:
    t = LoginThrottle(POLICY)
    for i in range(3):
        t.record_failure(None, "6.6.6.6", float(i))
    assert t.begin("x", "6.6.6.6", 3.0) is None
    assert t.begin("y", "6.6.6.6", 3.0) is None
    assert t.begin("z", "6.6.6.6", 3.0) == POLICY.inflight_retry  # 3 failures + 2 in flight = 5
    t.finish("x", "6.6.6.6", 4.0, success=True)  # a success frees the slot but never clears the address
    assert t.begin("z", "6.6.6.6", 4.0) is None
    assert t.finish("z", "6.6.6.6", 5.0, success=False) is None
    assert t.finish("y", "6.6.6.6", 5.0, success=False) == 30.0


def test_ipv6_keys_are_grouped_by_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1"
    t = LoginThrottle(POLICY)
    for i in range(5):
        assert t.begin(None, f"2001:db8:1:2::{i + 1}", 0.0) is None
    assert t.begin(None, "2001:db8:1:2::99", 0.0) is not None
    assert t.begin(None, "2001:db8:1:3::1", 0.0) is None
