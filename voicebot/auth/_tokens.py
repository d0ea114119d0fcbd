"""Opaque bearer tokens (resume tokens, admin token): generation, storage hash, comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["TOKEN_BYTES", "new_token", "resolve_admin_token", "token_hash", "tokens_equal"]

#: Entropy of generated tokens in bytes (256 bits; 43 URL-safe characters).
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh URL-safe token with :data:`TOKEN_BYTES` bytes of entropy from :mod:`secrets`."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest of ``token``: what the store keeps instead of the token itself.

    A plain, unsalted fast hash is enough here because tokens are 256-bit random values, not
    passwords: nobody can enumerate or dictionary-attack that space, so a leaked database does not
    reveal usable tokens, and a deterministic hash lets the store look a session up by an index.
    Never use this for user-chosen secrets (see :class:`voicebot.auth.Passwords`).
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    """Compare two tokens in constant time (:func:`hmac.compare_digest`), so timing leaks nothing."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def resolve_admin_token(configured: str | None) -> tuple[str, bool]:
    """Return ``(admin_token, generated)``.

    A configured token (surrounding whitespace removed) is used as is and ``generated`` is False.
    If ``configured`` is None or blank, a new random token is generated and ``generated`` is True: the
    caller should print it once at startup, since it is not stored anywhere.
    """
    if configured is not None and configured.strip():
        return configured.strip(), False
    return new_token(), True
