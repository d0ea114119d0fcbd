"""Deterministic message corruption driven by a point's own ``random.Random``.

``str``: flip 1-3 characters to hostile ones or truncate; ``bytes``/``bytearray``: XOR 1-3 bytes or truncate;
``dict``: corrupt one field (delete it, null it, give it a wrong type or corrupt its value, recursively);
``list``/``tuple``: corrupt one element. The result always differs from the input; the input is never mutated.
Other types are returned unchanged with ``ok=False``.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["corrupt_value"]

_HOSTILE = ('"', "{", "}", "\\", "\x00", "\ufffd", "\u202e", "]", ",", "\n")
_WRONG_TYPES: tuple[Any, ...] = (None, "\x00corrupt", -1, 1e308, [], {}, True)


def _corrupt_str(text: str, rng: random.Random) -> str:
    if not text:
        return rng.choice(_HOSTILE)
    if len(text) > 1 and rng.random() < 0.3:
        return text[: rng.randrange(len(text))]
    chars = list(text)
    for _ in range(rng.randint(1, min(3, len(chars)))):
        pos = rng.randrange(len(chars))
        choices = [ch for ch in _HOSTILE if ch != chars[pos]]
        chars[pos] = rng.choice(choices)
    out = "".join(chars)
    return out if out != text else text + rng.choice(_HOSTILE)


def _corrupt_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    if len(data) > 1 and rng.random() < 0.3:
        return data[: rng.randrange(len(data))]
    buf = bytearray(data)
    for _ in range(rng.randint(1, min(3, len(buf)))):
        buf[rng.randrange(len(buf))] ^= rng.randrange(1, 256)
    out = bytes(buf)
    return out if out != data else data + b"\xff"


def _corrupt_field(value: Any, rng: random.Random, depth: int) -> Any:
    ok, out = _corrupt(value, rng, depth + 1)
    if ok and rng.random() < 0.5:
        return out
    candidates = [w for w in _WRONG_TYPES if not _equal(w, value)]
    return rng.choice(candidates)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays with ambiguous truth values: treat as different
        return False


def _corrupt(value: Any, rng: random.Random, depth: int = 0) -> tuple[bool, Any]:
    if isinstance(value, str):
        return True, _corrupt_str(value, rng)
    if isinstance(value, bytes | bytearray):
        out = _corrupt_bytes(bytes(value), rng)
        return True, bytearray(out) if isinstance(value, bytearray) else out
    if depth > 8:
        return False, value
    if isinstance(value, dict):
        if not value:
            return True, {"\x00corrupt": None}
        keys = sorted(value, key=repr)
        key = keys[rng.randrange(len(keys))]
        copy = dict(value)
        if rng.random() < 0.25:
            del copy[key]
        else:
            copy[key] = _corrupt_field(value[key], rng, depth)
        return True, copy
    if isinstance(value, list | tuple):
        if not value:
            return True, type(value)([None])
        items = list(value)
        index = rng.randrange(len(items))
        items[index] = _corrupt_field(items[index], rng, depth)
        return True, type(value)(items)
    return False, value


def corrupt_value(value: Any, rng: random.Random) -> tuple[bool, Any]:
    """Return ``(ok, corrupted copy)``; ``ok`` is False (and ``value`` returned) for unsupported types."""
    return _corrupt(value, rng)
