"""Origin policy for WebSocket upgrades (against cross-site WebSocket hijacking).

A browser always sends ``Origin`` on a WebSocket handshake, and a page from another site could otherwise open a
socket to the hub with the visitor's network position. Non-browser clients (workers, scripts) send none and are
allowed. Rules, in order: no ``Origin`` → allowed; ``*`` in the list → allowed; the request's own origin (its
``Host`` with the listener's scheme) → allowed, since same-origin is never cross-site; an origin in the list →
allowed; with the default list, any ``localhost`` / ``127.0.0.1`` / ``[::1]`` origin → allowed. Everything else,
``null`` included, is refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["DEFAULT_ALLOWED_ORIGINS", "OriginPolicy"]

DEFAULT_ALLOWED_ORIGINS = ""
"""The default ``--allowed-origins``: empty means the server's own origin and localhost."""
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalise(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased with the default port dropped, or None when it is not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{shown}:{port}"


class OriginPolicy:
    """Built from ``--allowed-origins`` (a comma list; empty: own origin + localhost; ``*``: everything)."""

    def __init__(self, allowed: str = DEFAULT_ALLOWED_ORIGINS) -> None:
        items = [item.strip() for item in allowed.split(",") if item.strip()]
        self.allow_all = "*" in items
        self.localhost = not items
        self.origins: frozenset[str] = frozenset(
            n for n in (_normalise(item) for item in items if item != "*") if n is not None)
        bad = [item for item in items if item != "*" and _normalise(item) is None]
        if bad:
            raise ValueError(f"allowed_origins: not an origin (scheme://host[:port]): {', '.join(bad)}")

    def allows(self, origin: str | None, *, host: str, tls: bool) -> bool:
        """Whether a handshake with ``Origin: origin`` arriving with ``Host: host`` may proceed."""
        if origin is None or self.allow_all:
            return True
        normal = _normalise(origin)
        if normal is None:  # "null" (sandboxed frames, file: pages) and garbage
            return False
        own = _normalise(f"{'https' if tls else 'http'}://{host}") if host else None
        if normal == own or normal in self.origins:
            return True
        if self.localhost:
            hostname = urlsplit(normal).hostname or ""
            return hostname in _LOCAL_HOSTS
        return False
