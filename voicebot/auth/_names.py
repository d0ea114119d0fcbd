"""Name normalisation shared by the store (unique key) and the login throttle (counter key)."""

from __future__ import annotations

__all__ = ["name_key"]


def name_key(name: str) -> str:
    """The case-insensitive identity of a display name: ``name.strip().casefold()``.

    Registered names are unique on this key, and throttle counters are kept per key, so ``"Alice "``
    and ``"ALICE"`` are the same account for both.
    """
    return name.strip().casefold()
