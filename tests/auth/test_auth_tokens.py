"""Token helpers and the admin token resolver."""

from __future__ import annotations

import hashlib
import re

import pytest

from voicebot.auth import TOKEN_BYTES, name_key, new_token, resolve_admin_token, token_hash, tokens_equal


def test_new_token_is_urlsafe_and_unique() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert TOKEN_BYTES == 32


def test_token_hash_is_sha256_hex() -> None:
    assert token_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    token = new_token()
    assert token_hash(token) == token_hash(token)
    assert token_hash(token) != token_hash(new_token())
    assert token not in token_hash(token)


def test_tokens_equal() -> None:
    token = new_token()
    assert tokens_equal(token, token)
    assert tokens_equal(token, "".join(token))
    assert not tokens_equal(token, token[:-1])
    assert not tokens_equal(token, new_token())
    assert tokens_equal("héllo", "héllo")  # non-ASCII works (compare_digest on bytes)


@pytest.mark.parametrize("configured", [None, "", "   "])
def test_admin_token_generated_when_unset(configured: str | None) -> None:
    token, generated = resolve_admin_token(configured)
    assert generated is True
    assert len(token) == 43
    assert resolve_admin_token(configured)[0] != token


def test_admin_token_configured() -> None:
    assert resolve_admin_token("  s3cret-admin ") == ("s3cret-admin", False)


def test_name_key() -> None:
    assert name_key("  Alice ") == "alice"
    assert name_key("Straße") == name_key("STRASSE") == "strasse"
