"""Errors raised by the resilience primitives (all but one are :class:`VoiceBotError` subclasses)."""

from __future__ import annotations

import attrs

from voicebot.errors import Category, Severity, VoiceBotError

__all__ = ["CircuitOpenError", "IllegalStateTransition", "RestartBudgetExceeded"]


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class CircuitOpenError(VoiceBotError):
    """A circuit breaker refused a call (OPEN, FORCED_OPEN, or HALF_OPEN with every probe permit taken).

    Category is ``rate_limit``, not ``provider``: a rejection is a local admission decision with a
    ``retry_after`` contract (exactly what a rate limit is), and breakers guard persistence as well as
    providers, so ``provider`` would mis-attribute it in error statistics. The guarded resource is named in
    ``context["breaker"]``. It is retryable and ``retry_after`` says when the breaker will admit probes.
    """

    message: str = attrs.field(default="service temporarily unavailable, try again later", kw_only=False)
    code: str = "circuit_open"
    category: Category = Category.RATE_LIMIT
    severity: Severity = Severity.LOW
    retryable: bool = True


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class RestartBudgetExceeded(VoiceBotError):
    """A :class:`Supervisor` spent its restart budget; raised into the parent with the last failure as cause."""

    message: str = attrs.field(default="a supervised task keeps failing", kw_only=False)
    code: str = "restart_budget_exceeded"
    category: Category = Category.SYSTEM
    severity: Severity = Severity.CRITICAL
    retryable: bool = False
    child: str | None = None
    """Name of the child whose restart would have exceeded the budget."""
    last_failure: BaseException | None = None
    """The failure that triggered the escalation (also ``__cause__``); None if the child exited normally."""


class IllegalStateTransition(RuntimeError):
    """A circuit-breaker state transition that the state machine does not allow (a programming error)."""
