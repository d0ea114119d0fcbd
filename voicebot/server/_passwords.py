"""Placeholder seam for password hashing; replaced by voicebot.auth when it lands."""

from __future__ import annotations

import argon2
import trio

__all__ = ["PasswordHasher"]


class PasswordHasher:
    """Argon2id hashing off the event loop (``trio.to_thread``); verification is constant-time."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher if hasher is not None else argon2.PasswordHasher()

    async def hash(self, password: str) -> str:
        """Hash ``password`` in a worker thread."""
        return await trio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, digest: str, password: str) -> bool:
        """True when ``password`` matches ``digest``."""
        def check() -> bool:
            try:
                return bool(self._hasher.verify(digest, password))
            except argon2.exceptions.VerificationError:
                return False
            except argon2.exceptions.InvalidHashError:
                return False
        return await trio.to_thread.run_sync(check)
