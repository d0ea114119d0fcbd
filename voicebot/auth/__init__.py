"""Authentication building blocks: Argon2id password hashing, bearer tokens, a sans-IO login throttle.

- :class:`Passwords`: ``await hash(pw)``, ``await verify(hash_or_None, pw)``, ``needs_rehash(hash)``;
  hashing runs in a worker thread behind a bounded queue.
- :func:`new_token`, :func:`token_hash`, :func:`tokens_equal`, :func:`resolve_admin_token`.
- :class:`LoginThrottle` / :class:`ThrottlePolicy`: per-name and per-address failure counting with
  exponential lockouts and bounded memory; pure (explicit ``now`` arguments).
- :func:`name_key`: the case-insensitive identity of a name (also the store's unique key).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._names import name_key
from ._throttle import LoginThrottle, ThrottlePolicy, address_key
from ._tokens import TOKEN_BYTES, new_token, resolve_admin_token, token_hash, tokens_equal

if TYPE_CHECKING:
    from ._passwords import DEFAULT_PARAMETERS, Passwords


def __getattr__(name: str) -> Any:
    # Password hashing (argon2, trio) loads on first use: the sans-IO hub needs only the token helpers.
    if name not in ("DEFAULT_PARAMETERS", "Passwords"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module("._passwords", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_PARAMETERS",
    "TOKEN_BYTES",
    "LoginThrottle",
    "Passwords",
    "ThrottlePolicy",
    "address_key",
    "name_key",
    "new_token",
    "resolve_admin_token",
    "token_hash",
    "tokens_equal",
]
