"""voicebot's error model: one hierarchy, one classifier, one handler.

- :class:`VoiceBotError` and its subclasses carry ``code``, ``category``, ``severity``, ``retryable``,
  a user-safe ``message`` and structured ``context``.
- :func:`classify` maps any exception (nested groups included) into that hierarchy;
  :func:`split_passthrough` separates ``Cancelled``/``KeyboardInterrupt``/``SystemExit``, which always propagate.
- :class:`ErrorHandler` decides what each severity does, counts, logs and notifies listeners.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._budget import ErrorBudget
from ._types import (
    DEFAULT_CLOSE_CODE,
    AuthError,
    Category,
    LobbyError,
    PersistenceError,
    ProviderError,
    RateLimitError,
    SessionError,
    Severity,
    ValidationError,
    VoiceBotError,
    WebRTCError,
    WebSocketError,
)

if TYPE_CHECKING:
    from ._classify import PASSTHROUGH, Classification, classify, flatten, map_exception, split_passthrough
    from ._handler import Decision, ErrorContext, ErrorHandler, ErrorRecord, IdFactory, RequestContext

# The classifier and the handler know trio, trio_websocket and sqlite3; they load on first use, so the sans-IO
# core (hub, protocol), which only raises these error types, imports none of them.
_LAZY = {
    **dict.fromkeys(("PASSTHROUGH", "Classification", "classify", "flatten", "map_exception", "split_passthrough"),
                    "._classify"),
    **dict.fromkeys(("Decision", "ErrorContext", "ErrorHandler", "ErrorRecord", "IdFactory", "RequestContext"),
                    "._handler"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CLOSE_CODE",
    "PASSTHROUGH",
    "AuthError",
    "Category",
    "Classification",
    "Decision",
    "ErrorBudget",
    "ErrorContext",
    "ErrorHandler",
    "ErrorRecord",
    "IdFactory",
    "LobbyError",
    "PersistenceError",
    "ProviderError",
    "RateLimitError",
    "RequestContext",
    "SessionError",
    "Severity",
    "ValidationError",
    "VoiceBotError",
    "WebRTCError",
    "WebSocketError",
    "classify",
    "flatten",
    "map_exception",
    "split_passthrough",
]
