"""Per-operation control of which local addresses aioice offers as host candidates.

aioice gathers host candidates from ``aioice.ice.get_host_addresses()``, which skips ``127.0.0.1`` and ``::1``
unconditionally, so two peers on a loopback-only host (CI containers, network namespaces) get no candidates
at all. aiortc exposes no option for this.

We replace that module-level function **once per process** with a dispatcher that behaves exactly like the
original unless the context variable :data:`_POLICY` is set. Only our own ``setLocalDescription`` wrapper sets
it, and only for peer connections whose :class:`MediaConfig` asks for it. aiortc gathers inside
``setLocalDescription`` through ``asyncio.gather``, whose child tasks copy the current context, so the policy
reaches exactly that connection's gathering and nothing else in the process (asyncio tasks each run in their
own context copy). Other aiortc users in the same process are unaffected.
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Callable

import aioice.ice

from ._config import MediaConfig

__all__ = ["host_address_policy", "install_host_address_hook"]

_LOOPBACK_V4 = "127.0.0.1"

_POLICY: contextvars.ContextVar[MediaConfig | None] = contextvars.ContextVar(
    "voicebot_media_host_address_policy", default=None
)
_original: Callable[[bool, bool], list[str]] | None = None


def _policy_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    assert _original is not None
    config = _POLICY.get()
    if config is None:
        return _original(use_ipv4, use_ipv6)
    if config.host_addresses is not None:
        chosen = []
        for address in config.host_addresses:
            version = ipaddress.ip_address(address).version
            if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
                chosen.append(address)
        return chosen
    addresses = _original(use_ipv4, use_ipv6)
    if config.allow_loopback and use_ipv4 and _LOOPBACK_V4 not in addresses:
        addresses.append(_LOOPBACK_V4)
    return addresses


def install_host_address_hook() -> None:
    """Install the dispatcher into ``aioice.ice`` (idempotent; a no-op for anyone who sets no policy)."""
    global _original  # noqa: PLW0603 - one process-wide hook, installed once
    current = aioice.ice.get_host_addresses
    if current is _policy_host_addresses:
        return
    _original = current
    aioice.ice.get_host_addresses = _policy_host_addresses


def host_address_policy(config: MediaConfig) -> contextvars.Token[MediaConfig | None] | None:
    """Activate ``config``'s address policy in the current context; returns the token to reset, or None."""
    if not config.patches_host_addresses:
        return None
    install_host_address_hook()
    return _POLICY.set(config)


def reset_host_address_policy(token: contextvars.Token[MediaConfig | None] | None) -> None:
    """Undo :func:`host_address_policy`."""
    if token is not None:
        _POLICY.reset(token)
