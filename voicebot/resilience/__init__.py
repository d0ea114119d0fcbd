"""Resilience primitives for voicebot, on Trio's clock and the project's error model.

- :class:`CircuitBreaker` (resilience4j state machine over a sans-IO :class:`BreakerCore`) and
  :class:`BreakerRegistry` (one breaker per named resource).
- :class:`RetryStrategy`: exponential backoff with seeded jitter, ``retry_after``, whole-operation deadline.
- :class:`Supervisor`: restart policies, a sliding restart budget and escalation.

They compose as ``await retry.call(breaker.call, fn, *args)``: the breaker's :class:`CircuitOpenError`
is retryable and carries ``retry_after``, which the retry honours.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._backoff import Backoff, Jitter
from ._breaker import CircuitBreaker
from ._config import BreakerConfig, Outcome, WindowType, default_ignore
from ._core import LEGAL_TRANSITIONS, BreakerCore, BreakerEvent, BreakerEventKind, CircuitState, Permit
from ._errors import CircuitOpenError, IllegalStateTransition, RestartBudgetExceeded
from ._registry import BreakerRegistry
from ._retry import Attempt, RetryEvent, RetryEventKind, RetryStrategy
from ._window import CountWindow, TimeWindow, WindowCounts

if TYPE_CHECKING:
    from ._supervisor import ChildState, ChildStatus, Policy, Supervisor

__all__ = [
    "LEGAL_TRANSITIONS",
    "Attempt",
    "Backoff",
    "BreakerConfig",
    "BreakerCore",
    "BreakerEvent",
    "BreakerEventKind",
    "BreakerRegistry",
    "ChildState",
    "ChildStatus",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CountWindow",
    "IllegalStateTransition",
    "Jitter",
    "Outcome",
    "Permit",
    "Policy",
    "RestartBudgetExceeded",
    "RetryEvent",
    "RetryEventKind",
    "RetryStrategy",
    "Supervisor",
    "TimeWindow",
    "WindowCounts",
    "WindowType",
    "default_ignore",
]

# The supervisor (restart policies) loads with the bot worker that uses it, not with every server.
__getattr__ = lazy_exports(__name__, {
    "ChildState": "._supervisor",
    "ChildStatus": "._supervisor",
    "Policy": "._supervisor",
    "Supervisor": "._supervisor",
})
