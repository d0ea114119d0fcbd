"""Argon2id password hashing off the event loop (cheap parameters for speed)."""

from __future__ import annotations

import argon2
import pytest
import trio
import trio.testing

from voicebot.auth import DEFAULT_PARAMETERS, Passwords
from voicebot.errors import AuthError, RateLimitError

CHEAP = argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(CHEAP)


async def test_round_trip(passwords: Passwords) -> None:
    encoded = await passwords.hash("correct horse")
    assert encoded.startswith("$argon2id$")
    assert "correct horse" not in encoded
    assert await passwords.verify(encoded, "correct horse") is True
    assert await passwords.verify(encoded, "wrong horse") is False
    assert await passwords.hash("correct horse") != encoded  # fresh salt every time


async def test_unknown_account_still_hashes(passwords: Passwords) -> None:
    assert await passwords.verify(None, "anything") is False
    assert passwords._dummy_hash is not None
    assert await passwords.verify(None, "voicebot-dummy-password") is False


async def test_invalid_stored_hash(passwords: Passwords) -> None:
    with pytest.raises(AuthError) as info:
        await passwords.verify("not-a-hash", "pw")
    assert info.value.code == "invalid_password_hash"


async def test_needs_rehash(passwords: Passwords) -> None:
    cheap_hash = await passwords.hash("pw")
    assert passwords.needs_rehash(cheap_hash) is False
    stronger = Passwords(argon2.PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, hash_len=16, salt_len=8))
    assert stronger.needs_rehash(cheap_hash) is True
    assert await stronger.verify(cheap_hash, "pw") is True  # old hashes still verify
    assert passwords.needs_rehash("garbage") is True


def test_default_parameters_are_rfc9106_low_memory() -> None:
    assert DEFAULT_PARAMETERS.type is argon2.Type.ID
    assert (DEFAULT_PARAMETERS.time_cost, DEFAULT_PARAMETERS.memory_cost, DEFAULT_PARAMETERS.parallelism) == (
        3, 64 * 1024, 4,
    )


async def test_default_hasher_uses_default_parameters() -> None:
    hasher = Passwords().hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)


async def test_hashing_does_not_block_the_loop(passwords: Passwords) -> None:
    ticks = 0

    async def ticker(done: trio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await trio.lowlevel.checkpoint()

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker, done)
        slow = Passwords(argon2.PasswordHasher(time_cost=4, memory_cost=8 * 1024, parallelism=1))
        await slow.hash("pw")
        done.set()
    assert ticks > 1


async def test_queue_wait_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    passwords = Passwords(CHEAP, max_concurrent=1, queue_timeout=2.0)
    async with trio.open_nursery() as nursery:
        release = trio.Event()

        async def occupy() -> None:
            async with passwords._limiter:
                await release.wait()

        nursery.start_soon(occupy)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        with pytest.raises(RateLimitError) as info:
            await passwords.hash("pw")
        assert trio.current_time() - start == pytest.approx(2.0)
        assert info.value.code == "auth_busy"
        assert info.value.retry_after == 1.0
        release.set()


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        Passwords(CHEAP, max_concurrent=0)
    with pytest.raises(ValueError, match="queue_timeout"):
        Passwords(CHEAP, queue_timeout=0)
