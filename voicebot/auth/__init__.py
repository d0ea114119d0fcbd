"""Authentication building blocks: Argon2id password hashing, bearer tokens, a sans-IO login throttle.

- :class:`Passwords`: ``await hash(pw)``, ``await verify(hash_or_None, pw)``, ``needs_rehash(hash)``;
  hashing runs in a worker thread behind a bounded queue.
- :func:`new_token`, :func:`token_hash`, :func:`tokens_equal`, :func:`resolve_admin_token`.
- :class:`LoginThrottle` / :class:`ThrottlePolicy`: per-name and per-address failure counting with
  exponential lockouts and bounded memory; pure (explicit ``now`` arguments).
- :func:`name_key`: the case-insensitive identity of a name (also the store's unique key).
"""

from ._names import name_key
from ._passwords import DEFAULT_PARAMETERS, Passwords
from ._throttle import LoginThrottle, ThrottlePolicy, address_key
from ._tokens import TOKEN_BYTES, new_token, resolve_admin_token, token_hash, tokens_equal

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
