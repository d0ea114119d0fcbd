"""Sans-IO login throttle: failures per name and per remote address, exponential lockouts, bounded memory.

Pure bookkeeping: every method takes ``now`` (seconds, any monotonic clock, e.g. ``trio.current_time()``),
nothing here sleeps, reads a clock or does I/O, so it is trivially testable with explicit numbers.

Rules, per key (the normalised name and, separately, the remote address):

- failures older than ``window`` are forgotten; the ``max_failures``-th failure inside the window starts
  a lockout of ``base_lockout × 2^(n-1)`` seconds for the n-th lockout, capped at ``max_lockout``;
  the failure list is then cleared, so after the lockout another ``max_failures`` attempts are allowed;
- a failure reported while the key is locked is not counted (the attempt should have been refused);
- attempts are counted while they are *in flight* (:meth:`LoginThrottle.begin` reserves before the slow
  password check, :meth:`LoginThrottle.finish` records the outcome): recent failures plus attempts in flight
  never exceed the limit, so 120 concurrent guesses cost at most ``max_failures`` real checks;
- addresses are held to ``max_failures``, names to ``name_max_failures`` (looser by default in the server):
  the attacker's address locks before the victim's name does, and a locked *name* is only refused to
  addresses that have failed recently (an address with no failures on record still gets through), so a
  stranger cannot lock the real user out;
- a success clears the *name's* entry (counter and lockout level); the address entry is kept, so an
  attacker cannot reset an address's count by logging into an account of their own;
- an entry with no failure for ``reset_after`` seconds and no running lockout is forgotten (lockout
  level included).

Memory: each table holds at most ``max_entries`` keys (stale ones evicted first, then the least recently
failed unlocked one among the 32 oldest, else the least recently failed) and each entry at most
``max_failures`` timestamps, so a flood of distinct addresses or names cannot grow memory without bound.
IPv6 addresses are keyed by their /64 network, because one client typically owns a whole /64.
Known trade-off: a name's in-flight cap applies to every address, so while a distributed guesser has
``name_max_failures`` checks running the real user is told to retry in ``inflight_retry`` seconds.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
from collections import OrderedDict, deque

import attrs

from ._names import name_key

__all__ = ["LoginThrottle", "ThrottlePolicy", "address_key"]

_MAX_KEY_CHARS = 256
_EVICTION_SCAN = 32


@attrs.frozen
class ThrottlePolicy:
    """Tunables of :class:`LoginThrottle` (seconds for durations)."""

    max_failures: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    """K: failures within ``window`` that trigger a lockout."""
    window: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    """W: how long a failure counts."""
    base_lockout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    """Length of the first lockout; each further lockout doubles it."""
    max_lockout: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    """Cap on one lockout."""
    reset_after: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    """Quiet time after which an unlocked entry (and its lockout level) is forgotten."""
    max_entries: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    """Cap on tracked keys per table (names, addresses)."""
    name_max_failures: int | None = attrs.field(default=None)
    """K for names (None: ``max_failures``); the server makes it looser than the per-address K."""
    inflight_retry: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    """``retry_after`` told to an attempt refused because the limit is taken up by attempts in flight."""

    @property
    def name_limit(self) -> int:
        """K for names."""
        return self.name_max_failures if self.name_max_failures is not None else self.max_failures

    def lockout(self, level: int) -> float:
        """Duration of the ``level``-th lockout (1-based)."""
        return min(self.base_lockout * 2.0 ** min(level - 1, 64), self.max_lockout)


@attrs.define
class _Entry:
    last_failure: float
    failures: deque[float] = attrs.field(factory=deque)
    level: int = 0
    locked_until: float = -math.inf


@functools.lru_cache(maxsize=4096)
def address_key(addr: str) -> str:
    """The throttling/quota identity of an address: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 by /64.

    Accepts a bare address (``::1``); anything unparsable is keyed by its first 256 characters. Results are
    cached (a pure function of ``addr``, at most 4,096 kept): the per-address request budget asks on every
    request, and parsing an address costs microseconds.
    """
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return addr[:_MAX_KEY_CHARS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Counts failed logins per name and per address and says how long to refuse further attempts.

    Usage: ``wait = throttle.begin(name, addr, now)``; if ``wait`` is not None refuse with
    ``RateLimitError(retry_after=wait)``; otherwise verify, then ``finish(..., success=ok)`` (in a
    ``finally``: ``success=None`` when the check did not complete). ``check`` + ``record_*`` remain for
    callers whose check is instantaneous.
    """

    def __init__(self, policy: ThrottlePolicy | None = None) -> None:
        self.policy = policy if policy is not None else ThrottlePolicy()
        """The tunables in force."""
        self._names: OrderedDict[str, _Entry] = OrderedDict()
        self._addrs: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, int] = {}
        """Attempts between :meth:`begin` and :meth:`finish`, by ``"n:"+name key`` / ``"a:"+address key``
        (bounded by the number of concurrent attempts; a key is dropped when its count returns to 0)."""

    def _keys(self, name: str | None, addr: str | None) -> list[tuple[OrderedDict[str, _Entry], str]]:
        keys: list[tuple[OrderedDict[str, _Entry], str]] = []
        if name is not None:
            keys.append((self._names, name_key(name)[:_MAX_KEY_CHARS]))
        if addr is not None:
            keys.append((self._addrs, address_key(addr)))
        return keys

    def _stale(self, entry: _Entry, now: float) -> bool:
        return now >= entry.locked_until and now - entry.last_failure >= self.policy.reset_after

    def _limit(self, table: OrderedDict[str, _Entry]) -> int:
        return self.policy.name_limit if table is self._names else self.policy.max_failures

    def _tag(self, table: OrderedDict[str, _Entry], key: str) -> str:
        return ("n:" if table is self._names else "a:") + key

    def _has_failed(self, addr: str | None, now: float) -> bool:
        if addr is None:
            return True
        entry = self._addrs.get(address_key(addr))
        return entry is not None and not self._stale(entry, now)

    def check(self, name: str | None, addr: str | None, now: float) -> float | None:
        """Seconds to wait before ``name`` may try again from ``addr``, or None if allowed now.

        A locked name is only refused to an address with failures on record (or to ``addr=None``).
        Read-only: checking never creates entries, so refused or unknown callers cost no memory.
        """
        wait = 0.0
        failed = self._has_failed(addr, now)
        for table, key in self._keys(name, addr):
            if table is self._names and not failed:
                continue
            entry = table.get(key)
            if entry is not None and entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
        return wait if wait > 0 else None

    def begin(self, name: str | None, addr: str | None, now: float) -> float | None:
        """Reserve one attempt before the slow check: returns the seconds to wait (refused), or None (reserved).

        Refused when :meth:`check` refuses, or when recent failures plus attempts in flight already reach the
        limit of the name or the address (then ``inflight_retry``). Every None must be paired with exactly one
        :meth:`finish`. Refusals allocate nothing.
        """
        wait = self.check(name, addr, now)
        if wait is not None:
            return wait
        keys = self._keys(name, addr)
        for table, key in keys:
            entry = table.get(key)
            recent = 0
            if entry is not None and not self._stale(entry, now):
                horizon = now - self.policy.window
                recent = sum(1 for t in entry.failures if t > horizon)
            if recent + self._inflight.get(self._tag(table, key), 0) >= self._limit(table):
                return self.policy.inflight_retry
        for table, key in keys:
            tag = self._tag(table, key)
            self._inflight[tag] = self._inflight.get(tag, 0) + 1
        return None

    def finish(self, name: str | None, addr: str | None, now: float, *, success: bool | None) -> float | None:
        """End an attempt reserved by :meth:`begin`: ``success`` True/False records it, None (the check did not
        happen, e.g. cancelled) only releases it. Returns the lockout length if a failure started one."""
        for table, key in self._keys(name, addr):
            tag = self._tag(table, key)
            left = self._inflight.get(tag, 0) - 1
            if left > 0:
                self._inflight[tag] = left
            else:
                self._inflight.pop(tag, None)
        if success is None:
            return None
        if success:
            self.record_success(name, addr, now)
            return None
        return self.record_failure(name, addr, now)

    @property
    def in_flight(self) -> int:
        """Attempts reserved and not yet finished (summed over names and addresses)."""
        return sum(self._inflight.values())

    def record_failure(self, name: str | None, addr: str | None, now: float) -> float | None:
        """Count one failed attempt; returns the lockout length if this failure started one, else None."""
        started: float | None = None
        for table, key in self._keys(name, addr):
            entry = table.get(key)
            if entry is not None and self._stale(entry, now):
                del table[key]
                entry = None
            if entry is None:
                self._make_room(table, now)
                entry = table[key] = _Entry(last_failure=now)
            table.move_to_end(key)
            entry.last_failure = now
            if entry.locked_until > now:
                continue
            horizon = now - self.policy.window
            while entry.failures and entry.failures[0] <= horizon:
                entry.failures.popleft()
            entry.failures.append(now)
            if len(entry.failures) >= self._limit(table):
                entry.failures.clear()
                entry.level += 1
                duration = self.policy.lockout(entry.level)
                entry.locked_until = now + duration
                started = duration if started is None else max(started, duration)
        return started

    def record_success(self, name: str | None, addr: str | None, now: float) -> None:
        """A successful login: forget the name's failures and lockout level (the address keeps its count)."""
        del addr, now  # part of the uniform signature; addresses are deliberately not reset
        if name is not None:
            self._names.pop(name_key(name)[:_MAX_KEY_CHARS], None)

    def _make_room(self, table: OrderedDict[str, _Entry], now: float) -> None:
        while table:
            oldest = next(iter(table.values()))
            if not self._stale(oldest, now):
                break
            table.popitem(last=False)
        if len(table) < self.policy.max_entries:
            return
        # Evict the least recently failed *unlocked* key among the oldest few, so that a flood of fresh
        # keys cannot cheaply push a running lockout out of the table; fall back to plain LRU.
        victim = next(
            (key for key, entry in itertools.islice(table.items(), _EVICTION_SCAN) if entry.locked_until <= now),
            None,
        )
        if victim is None:
            table.popitem(last=False)
        else:
            del table[victim]

    def prune(self, now: float) -> int:
        """Drop every stale entry (call now and then, e.g. once a minute); returns how many were dropped."""
        dropped = 0
        for table in (self._names, self._addrs):
            for key in [k for k, e in table.items() if self._stale(e, now)]:
                del table[key]
                dropped += 1
        return dropped

    @property
    def size(self) -> tuple[int, int]:
        """Number of tracked (names, addresses)."""
        return len(self._names), len(self._addrs)
