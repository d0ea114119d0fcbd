"""Circuit-breaker configuration and the call-outcome classification."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import attrs

from voicebot.errors import Category, classify, split_passthrough

__all__ = ["BreakerConfig", "Outcome", "WindowType", "default_ignore", "with_options"]


class WindowType(enum.StrEnum):
    """Sliding-window kinds."""

    COUNT_BASED = "count_based"
    TIME_BASED = "time_based"


class Outcome(enum.Enum):
    """How a permitted call ended, as far as the breaker is concerned."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    CANCELLED = "cancelled"


def default_ignore(exc: BaseException) -> bool:
    """Ignore caller errors: a non-retryable VoiceBotError of category validation or auth."""
    error = classify(exc).error
    return not error.retryable and error.category in (Category.VALIDATION, Category.AUTH)


def _positive(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attr.name} must be > 0, got {value!r}")


def _percent(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if not 0 < value <= 100:
        raise ValueError(f"{attr.name} must be in (0, 100], got {value!r}")


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """Breaker settings (resilience4j names, seconds on Trio's clock, rates in percent)."""

    failure_rate_threshold: float = attrs.field(default=50.0, validator=_percent)
    """Open when the failure rate (%) is >= this, once ``minimum_number_of_calls`` are buffered."""
    slow_call_rate_threshold: float = attrs.field(default=100.0, validator=_percent)
    """Open when the slow-call rate (%) is >= this."""
    slow_call_duration: float = attrs.field(default=60.0, validator=_positive)
    """A call taking >= this many seconds is slow (whether it succeeded or not)."""
    sliding_window_type: WindowType = WindowType.COUNT_BASED
    sliding_window_size: int = attrs.field(default=20, validator=_positive)
    """Calls (count-based) or seconds (time-based) in the CLOSED-state window."""
    minimum_number_of_calls: int = attrs.field(default=10, validator=_positive)
    """No rate is evaluated before this many calls are in the window."""
    wait_duration_in_open_state: float = attrs.field(default=30.0, validator=_positive)
    """How long OPEN lasts before HALF_OPEN (first opening)."""
    open_wait_multiplier: float = attrs.field(default=1.0, validator=attrs.validators.ge(1.0))
    """Each consecutive opening (no CLOSED in between) waits this factor longer."""
    max_wait_duration_in_open_state: float | None = attrs.field(default=None, validator=_positive)
    """Cap of the growing open wait (None: uncapped)."""
    permitted_calls_in_half_open: int = attrs.field(default=3, validator=_positive)
    """Probe calls allowed (concurrently, in total) in HALF_OPEN; their outcome decides CLOSED or OPEN."""
    max_wait_in_half_open: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """> 0: go back to OPEN if the probes have not decided within this many seconds. 0: wait forever."""
    call_timeout: float | None = attrs.field(default=None, validator=_positive)
    """Per-call timeout (cancel scope); a timed-out call is a failure and raises ``trio.TooSlowError``."""
    failure_threshold: int | None = attrs.field(default=None, validator=_positive)
    """Consecutive-failure mode (the seed's spelling): open after this many failures in a row; rates unused."""
    record: Callable[[BaseException], bool] | None = None
    """Which exceptions are failures (default: all); an unrecorded, unignored exception counts as success."""
    ignore: Callable[[BaseException], bool] | None = default_ignore
    """Which exceptions are not counted at all (checked before ``record``)."""

    def open_wait(self, openings: int) -> float:
        """The OPEN duration for the ``openings``-th consecutive opening (1-based), capped."""
        cap = self.max_wait_duration_in_open_state or math.inf
        try:
            wait = self.wait_duration_in_open_state * self.open_wait_multiplier ** max(openings - 1, 0)
        except OverflowError:
            wait = math.inf
        return min(wait, cap)

    def outcome_of(self, exc: BaseException | None) -> Outcome:
        """Classify how an exception (or None for a return) counts; passthroughs are CANCELLED."""
        if exc is None:
            return Outcome.SUCCESS
        passthrough, _failure = split_passthrough(exc)
        if passthrough is not None or not isinstance(exc, Exception):
            return Outcome.CANCELLED
        if self.ignore is not None and self.ignore(exc):
            return Outcome.IGNORED
        if self.record is None or self.record(exc):
            return Outcome.FAILURE
        return Outcome.SUCCESS


def with_options(config: BreakerConfig, options: dict[str, Any]) -> BreakerConfig:
    """``config`` with ``options`` applied, accepting the seed's spelling.

    ``recovery_timeout`` is an alias of ``wait_duration_in_open_state``; ``failure_threshold`` (consecutive
    failures) implies a single half-open probe unless ``permitted_calls_in_half_open`` is given.
    """
    options = dict(options)
    if "recovery_timeout" in options:
        options["wait_duration_in_open_state"] = options.pop("recovery_timeout")
    if options.get("failure_threshold") is not None and "permitted_calls_in_half_open" not in options:
        options["permitted_calls_in_half_open"] = 1
    return attrs.evolve(config, **options)
