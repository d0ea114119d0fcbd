"""voicebot's error model: one hierarchy, one classifier, one handler.

- :class:`VoiceBotError` and its subclasses carry ``code``, ``category``, ``severity``, ``retryable``,
  a user-safe ``message`` and structured ``context``.
- :func:`classify` maps any exception (nested groups included) into that hierarchy;
  :func:`split_passthrough` separates ``Cancelled``/``KeyboardInterrupt``/``SystemExit``, which always propagate.
- :class:`ErrorHandler` decides what each severity does, counts, logs and notifies listeners.
"""

from ._budget import ErrorBudget
from ._classify import PASSTHROUGH, Classification, classify, flatten, map_exception, split_passthrough
from ._handler import Decision, ErrorContext, ErrorHandler, ErrorRecord, IdFactory, RequestContext
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
