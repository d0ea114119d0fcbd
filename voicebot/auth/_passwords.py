"""Password hashing with Argon2id, off the event loop.

Parameters (the default): argon2-cffi's ``RFC_9106_LOW_MEMORY`` profile, i.e. Argon2id, ``time_cost=3``,
``memory_cost=64 MiB``, ``parallelism=4``, 16-byte salt, 32-byte hash. RFC 9106 §4 recommends exactly this
as the uniformly safe choice when 2 GiB per hash is not affordable, which is the case on a server that
hashes for many users. Argon2id is memory-hard (GPU/ASIC guessing costs memory, not just cycles) and
resists side channels. One hash takes tens of milliseconds of CPU and 64 MiB of RAM, so
:class:`Passwords` runs it in a low-priority worker thread (the event loop never blocks, nor starves) behind its own
:class:`trio.CapacityLimiter`: at most ``max_concurrent`` hashes run at once (peak RAM
``max_concurrent × 64 MiB``), and a login flood queues for at most ``queue_timeout`` seconds before
getting a retryable :class:`~voicebot.errors.RateLimitError` instead of exhausting the host.

Budget per caller: ``hash``/``verify`` take a ``key`` (the server passes the client's address key). One key
may have ``per_key_concurrent`` hashes running and ``per_key_queue`` more waiting; beyond that it is refused at
once with ``auth_busy``. So one address can hold at most ``per_key_concurrent`` places in the shared queue, and
a real login from elsewhere never waits behind hundreds of an attacker's hashes.

argon2-cffi (about 0.5 MiB resident) is imported at the first hash or verify, not with this module: a server
that no one asks for a password never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from voicebot._cpu import CpuPool
from voicebot.errors import AuthError, RateLimitError

if TYPE_CHECKING:
    import argon2

    DEFAULT_PARAMETERS: argon2.Parameters

__all__ = ["DEFAULT_PARAMETERS", "Passwords"]

_T = TypeVar("_T")


def __getattr__(name: str) -> Any:
    # DEFAULT_PARAMETERS: Argon2id, t=3, m=64 MiB, p=4 (RFC 9106 "low memory" recommendation); see the module
    # docstring. Looked up on first use, so that importing this module does not load argon2.
    if name != "DEFAULT_PARAMETERS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import argon2  # noqa: PLC0415

    return argon2.profiles.RFC_9106_LOW_MEMORY

# Hashed once so that verifying an unknown name costs as much as a real verify; never accepted.
_DUMMY_PASSWORD = "voicebot-dummy-password"


class Passwords:
    """Hash, verify and re-hash passwords without blocking Trio.

    ``hasher`` defaults to ``argon2.PasswordHasher.from_parameters(DEFAULT_PARAMETERS)``; tests pass a
    cheap one (``argon2.profiles.CHEAPEST``). Use one instance within one ``trio.run`` (it owns limiters).
    """

    def __init__(
        self,
        hasher: argon2.PasswordHasher | None = None,
        *,
        max_concurrent: int = 4,
        queue_timeout: float = 10.0,
        per_key_concurrent: int = 1,
        per_key_queue: int = 4,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if queue_timeout <= 0:
            raise ValueError("queue_timeout must be positive")
        self._hasher = hasher
        self._limiter = trio.CapacityLimiter(max_concurrent)
        # Own low-priority threads (as many as the limiter admits, so never waited on): hashing neither competes
        # with other to_thread users nor takes the cores from the event loop (see voicebot._cpu).
        self._threads = CpuPool("voicebot-argon2", max_concurrent)
        self._queue_timeout = queue_timeout
        if per_key_concurrent < 1 or per_key_queue < 0:
            raise ValueError("per_key_concurrent must be at least 1 and per_key_queue at least 0")
        self._per_key_concurrent = per_key_concurrent
        self._per_key_limit = per_key_concurrent + per_key_queue
        # key -> (its limiter, hashes queued or running); dropped when the count returns to 0 (bounded by callers)
        self._keys: dict[str, tuple[trio.CapacityLimiter, int]] = {}
        self._dummy_hash: str | None = None

    @property
    def hasher(self) -> argon2.PasswordHasher:
        """The underlying argon2 hasher (its parameters decide :meth:`needs_rehash`); the default one is made (and
        argon2 imported) at first use."""
        if self._hasher is None:
            import argon2  # noqa: PLC0415

            self._hasher = argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)
        return self._hasher

    def pending(self, key: str) -> int:
        """Hashes of ``key`` queued or running now."""
        entry = self._keys.get(key)
        return entry[1] if entry is not None else 0

    async def _run(self, fn: Callable[..., _T], *args: Any, key: str | None = None) -> _T:
        if key is None:
            return await self._run_shared(fn, *args)
        limiter, count = self._keys.get(key) or (trio.CapacityLimiter(self._per_key_concurrent), 0)
        if count >= self._per_key_limit:
            raise RateLimitError(
                "too many password checks from your address at once; try again shortly", code="auth_busy",
                retry_after=1.0, context={"per_address": self._per_key_limit},
            )
        self._keys[key] = (limiter, count + 1)
        try:
            with trio.move_on_after(self._queue_timeout) as waited:
                await limiter.acquire()
            if waited.cancelled_caught:
                raise self._busy()
            try:
                return await self._run_shared(fn, *args)
            finally:
                limiter.release()
        finally:
            left = self._keys[key][1] - 1
            if left:
                self._keys[key] = (limiter, left)
            else:
                del self._keys[key]

    def _busy(self) -> RateLimitError:
        return RateLimitError("server busy, try again shortly", code="auth_busy", retry_after=1.0,
                              context={"queue_timeout": self._queue_timeout})

    async def _run_shared(self, fn: Callable[..., _T], *args: Any) -> _T:
        # Bounded wait for a slot; the hash itself is CPU-bound and finishes on its own.
        with trio.move_on_after(self._queue_timeout) as waited:
            await self._limiter.acquire()
        if waited.cancelled_caught:
            raise self._busy()
        try:
            return await self._threads.run(fn, *args)
        finally:
            self._limiter.release()

    async def hash(self, password: str, *, key: str | None = None) -> str:
        """Return the encoded Argon2id hash (salt and parameters included) of ``password``; ``key``: see the
        module docs (per-caller budget)."""
        return await self._run(self.hasher.hash, password, key=key)

    async def verify(self, password_hash: str | None, password: str, *, key: str | None = None) -> bool:
        """True if ``password`` matches ``password_hash`` (argon2's comparison is constant time).

        ``password_hash=None`` (unknown account) still performs one full hash against a dummy, so the
        response time does not reveal whether a name is registered; the result is then False.
        A stored hash that is not a valid encoded hash raises :class:`~voicebot.errors.AuthError`
        ``invalid_password_hash`` (a data problem worth logging, not a wrong password).
        """
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
            await self._run(self._verify_quiet, self._dummy_hash, password, key=key)
            return False
        return await self._run(self._verify_quiet, password_hash, password, key=key)

    def _verify_quiet(self, password_hash: str, password: str) -> bool:
        import argon2.exceptions  # noqa: PLC0415 (loaded with the hasher)

        try:
            return self.hasher.verify(password_hash, password)
        except argon2.exceptions.VerifyMismatchError:
            return False
        except argon2.exceptions.InvalidHashError as exc:
            raise AuthError(
                "stored credentials are unusable", code="invalid_password_hash",
                context={"detail": str(exc)},
            ) from exc
        except argon2.exceptions.VerificationError:
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if ``password_hash`` was made with other parameters than the current hasher's.

        After a successful :meth:`verify`, re-hash the plaintext and store it (e.g. with
        ``Store.update_name_password``). Cheap: it only parses the encoded parameters.
        """
        import argon2.exceptions  # noqa: PLC0415 (loaded with the hasher)

        try:
            return self.hasher.check_needs_rehash(password_hash)
        except (argon2.exceptions.InvalidHashError, ValueError):
            return True
