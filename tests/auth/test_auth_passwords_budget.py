"""Issue 12 row 8: one address cannot fill the shared hash queue; a real login does not wait behind its hashes."""

from __future__ import annotations

import os
import threading
import time

import argon2
import pytest
import trio

from voicebot.auth import Passwords
from voicebot.errors import RateLimitError


class RecordingHasher(argon2.PasswordHasher):
    """Argon2's cheapest profile, slowed down and recording which password each hash was for, in start order."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1, hash_len=8, salt_len=8)
        self.started: list[str] = []
        self.threads: set[str] = set()
        self.nice: set[int] = set()
        self._lock = threading.Lock()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.started.append(str(password))
            self.threads.add(threading.current_thread().name)
            self.nice.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        time.sleep(0.02)
        return super().hash(password, salt=salt)


@pytest.mark.parametrize("flood", [10, 200])
async def test_one_address_holds_few_places_and_others_go_first(flood: int) -> None:
    hasher = RecordingHasher()
    passwords = Passwords(hasher, max_concurrent=2, queue_timeout=30.0, per_key_concurrent=1, per_key_queue=4)
    outcomes: list[str] = []

    async def attacker(i: int) -> None:
        try:
            await passwords.hash(f"a{i}", key="6.6.6.6")
            outcomes.append("hashed")
        except RateLimitError as exc:
            outcomes.append(exc.code)

    async with trio.open_nursery() as nursery:
        for i in range(flood):
            nursery.start_soon(attacker, i)
        await trio.sleep(0.005)
        assert passwords.pending("6.6.6.6") == 5  # 1 running + 4 queued; the rest were refused at once
        await passwords.hash("real", key="7.7.7.7")
        position = hasher.started.index("real")
    assert position <= 2  # behind at most the attacker's one running hash (and one that was already starting)
    assert outcomes.count("hashed") == 5 and outcomes.count("auth_busy") == flood - 5
    assert passwords.pending("6.6.6.6") == 0
    assert threading.main_thread().name not in hasher.threads  # never on the event loop's thread ...
    assert min(hasher.nice) > os.getpriority(os.PRIO_PROCESS, 0)  # ... and below the loop's priority


async def test_keys_are_forgotten_and_unkeyed_calls_still_work() -> None:
    passwords = Passwords(RecordingHasher(), per_key_queue=0)
    digest = await passwords.hash("x", key="k")
    assert await passwords.verify(digest, "x", key="k")
    assert await passwords.verify(digest, "x")
    assert passwords.pending("k") == 0
    with pytest.raises(ValueError, match="per_key_concurrent"):
        Passwords(RecordingHasher(), per_key_concurrent=0)
