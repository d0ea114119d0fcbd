"""The sans-IO circuit-breaker state machine: every method takes ``now``; no Trio, no clock, no I/O.

:class:`CircuitBreaker` wraps it with Trio's clock and cancel scopes; property tests drive it directly.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import attrs

from voicebot.errors import VoiceBotError

from ._config import BreakerConfig, Outcome, WindowType
from ._errors import IllegalStateTransition
from ._window import CountWindow, SlidingWindow, TimeWindow, WindowCounts

__all__ = ["LEGAL_TRANSITIONS", "BreakerCore", "BreakerEvent", "BreakerEventKind", "CircuitState", "Permit"]


class CircuitState(enum.StrEnum):
    """The five resilience4j breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


_S = CircuitState
#: Every allowed (from, to) pair. Automatic ones: CLOSED->OPEN, OPEN->HALF_OPEN, HALF_OPEN->CLOSED/OPEN.
#: ``reset()`` may additionally go from any state (CLOSED included) to CLOSED.
LEGAL_TRANSITIONS: frozenset[tuple[CircuitState, CircuitState]] = frozenset({
    (_S.CLOSED, _S.OPEN), (_S.CLOSED, _S.FORCED_OPEN), (_S.CLOSED, _S.DISABLED),
    (_S.OPEN, _S.HALF_OPEN), (_S.OPEN, _S.CLOSED), (_S.OPEN, _S.FORCED_OPEN), (_S.OPEN, _S.DISABLED),
    (_S.HALF_OPEN, _S.CLOSED), (_S.HALF_OPEN, _S.OPEN), (_S.HALF_OPEN, _S.FORCED_OPEN), (_S.HALF_OPEN, _S.DISABLED),
    (_S.FORCED_OPEN, _S.CLOSED), (_S.FORCED_OPEN, _S.HALF_OPEN), (_S.FORCED_OPEN, _S.DISABLED),
    (_S.DISABLED, _S.CLOSED), (_S.DISABLED, _S.FORCED_OPEN),
})


class BreakerEventKind(enum.StrEnum):
    """What a :class:`BreakerEvent` reports."""

    SUCCESS = "success"
    ERROR = "error"
    IGNORED_ERROR = "ignored_error"
    NOT_PERMITTED = "not_permitted"
    STATE_TRANSITION = "state_transition"
    RESET = "reset"


@attrs.frozen(kw_only=True)
class BreakerEvent:
    """One breaker event, delivered to listeners."""

    kind: BreakerEventKind
    breaker: str
    at: float
    """Trio time of the event (for lazy transitions: when it logically happened)."""
    state: CircuitState
    """State after the event."""
    duration: float | None = None
    exception: BaseException | None = None
    from_state: CircuitState | None = None
    to_state: CircuitState | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the exception as its class name and code)."""
        body: dict[str, Any] = {
            "kind": str(self.kind), "breaker": self.breaker, "at": self.at, "state": str(self.state),
        }
        if self.duration is not None:
            body["duration"] = self.duration
        if self.exception is not None:
            body["exception"] = type(self.exception).__name__
            if isinstance(self.exception, VoiceBotError):
                body["code"] = self.exception.code
        if self.from_state is not None and self.to_state is not None:
            body["from_state"], body["to_state"] = str(self.from_state), str(self.to_state)
        return body


@attrs.frozen
class Permit:
    """Proof that a call was admitted; results of permits from an earlier state generation are not counted."""

    generation: int
    state: CircuitState
    started_at: float


def _make_window(config: BreakerConfig) -> SlidingWindow:
    if config.sliding_window_type is WindowType.TIME_BASED:
        return TimeWindow(config.sliding_window_size)
    return CountWindow(config.sliding_window_size)


class BreakerCore:
    """The breaker's state machine and windows; pure, synchronous, driven by explicit ``now`` values."""

    def __init__(
        self, config: BreakerConfig, *, name: str = "breaker",
        emit: Callable[[BreakerEvent], None] | None = None, now: float | None = 0.0,
    ) -> None:
        """Start CLOSED at time ``now`` (None: at the first ``now`` seen); ``emit`` receives every event."""
        self.config = config
        self.name = name
        self._emit = emit or (lambda _event: None)
        self._state = CircuitState.CLOSED
        self._since_or_none = now
        self._generation = 0
        self._openings = 0
        self._open_until = math.inf
        self._window: SlidingWindow = _make_window(config)
        self._consecutive_failures = 0
        self._probe_window = CountWindow(config.permitted_calls_in_half_open)
        self._probes_issued = 0
        self._probes_done = 0
        self.not_permitted = 0
        """Calls rejected since creation."""

    # -- state ---------------------------------------------------------------------------------------------

    def state_at(self, now: float) -> CircuitState:
        """The state at ``now``, performing due time-driven transitions first."""
        self._advance(now)
        return self._state

    @property
    def last_state(self) -> CircuitState:
        """The state as of the last operation, without applying due time-driven transitions."""
        return self._state

    @property
    def generation(self) -> int:
        """Incremented on every transition."""
        return self._generation

    @property
    def openings(self) -> int:
        """Consecutive openings since the breaker was last CLOSED."""
        return self._openings

    @property
    def _since(self) -> float:
        assert self._since_or_none is not None, "the core's clock is anchored by _advance()"
        return self._since_or_none

    def _advance(self, now: float) -> None:
        if self._since_or_none is None:
            self._since_or_none = now
        while True:
            if self._state is CircuitState.OPEN and now >= self._open_until:
                self._transition(CircuitState.HALF_OPEN, self._open_until)
            elif (
                self._state is CircuitState.HALF_OPEN and self.config.max_wait_in_half_open > 0
                and now >= self._since + self.config.max_wait_in_half_open
            ):
                self._transition(CircuitState.OPEN, self._since + self.config.max_wait_in_half_open)
            else:
                return

    def transition(self, to: CircuitState, now: float) -> None:
        """Manually move to ``to``; raises :class:`IllegalStateTransition` for a pair not in the table."""
        self._advance(now)
        self._transition(to, now)

    def reset(self, now: float) -> None:
        """Back to CLOSED with empty windows and no opening history, from any state."""
        self._advance(now)
        if self._state is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED, now)
        else:
            self._enter(CircuitState.CLOSED, now)
        self._emit(BreakerEvent(kind=BreakerEventKind.RESET, breaker=self.name, at=now, state=self._state))

    def _transition(self, to: CircuitState, at: float) -> None:
        old = self._state
        if (old, to) not in LEGAL_TRANSITIONS:
            raise IllegalStateTransition(f"breaker {self.name!r}: illegal transition {old} -> {to}")
        self._enter(to, at)
        self._emit(BreakerEvent(
            kind=BreakerEventKind.STATE_TRANSITION, breaker=self.name, at=at, state=to, from_state=old, to_state=to,
        ))

    def _enter(self, to: CircuitState, at: float) -> None:
        self._state = to
        self._since_or_none = at
        self._generation += 1
        self._window = _make_window(self.config)
        self._consecutive_failures = 0
        if to is CircuitState.OPEN:
            self._openings += 1
            self._open_until = at + self.config.open_wait(self._openings)
        elif to is CircuitState.HALF_OPEN:
            self._probe_window = CountWindow(self.config.permitted_calls_in_half_open)
            self._probes_issued = self._probes_done = 0
        elif to is CircuitState.CLOSED:
            self._openings = 0

    # -- calls ---------------------------------------------------------------------------------------------

    def try_acquire(self, now: float) -> Permit | None:
        """Admit a call (a :class:`Permit`) or reject it (None, counted and reported as NOT_PERMITTED)."""
        self._advance(now)
        state = self._state
        if state in (CircuitState.CLOSED, CircuitState.DISABLED) or (
            state is CircuitState.HALF_OPEN and self._probes_issued < self.config.permitted_calls_in_half_open
        ):
            if state is CircuitState.HALF_OPEN:
                self._probes_issued += 1
            return Permit(self._generation, state, now)
        self.not_permitted += 1
        self._emit(BreakerEvent(kind=BreakerEventKind.NOT_PERMITTED, breaker=self.name, at=now, state=state))
        return None

    def retry_after(self, now: float) -> float:
        """Seconds until a rejected caller might be admitted (a hint for FORCED_OPEN / busy HALF_OPEN)."""
        self._advance(now)
        if self._state is CircuitState.OPEN:
            return max(self._open_until - now, 0.0)
        if self._state is CircuitState.HALF_OPEN:
            if self.config.max_wait_in_half_open > 0:
                return max(self._since + self.config.max_wait_in_half_open - now, 0.0)
            return self.config.call_timeout or self.config.wait_duration_in_open_state
        if self._state is CircuitState.FORCED_OPEN:
            return self.config.wait_duration_in_open_state
        return 0.0

    def on_result(
        self, permit: Permit, outcome: Outcome, now: float, exc: BaseException | None = None,
    ) -> None:
        """Record how an admitted call ended at ``now``; may trip or close the breaker."""
        duration = max(now - permit.started_at, 0.0)
        kind = {
            Outcome.SUCCESS: BreakerEventKind.SUCCESS, Outcome.FAILURE: BreakerEventKind.ERROR,
            Outcome.IGNORED: BreakerEventKind.IGNORED_ERROR,
        }.get(outcome)
        self._advance(now)
        if kind is not None:
            self._emit(BreakerEvent(
                kind=kind, breaker=self.name, at=now, state=self._state, duration=duration, exception=exc,
            ))
        if permit.generation != self._generation:
            return  # admitted under an earlier state: reported, not counted
        failed = outcome is Outcome.FAILURE
        slow = duration >= self.config.slow_call_duration
        if self._state is CircuitState.CLOSED and outcome in (Outcome.SUCCESS, Outcome.FAILURE):
            self._window.record(failed, slow, now)
            self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
            if self._should_trip(self._window.counts(now), self.config.minimum_number_of_calls):
                self._transition(CircuitState.OPEN, now)
        elif self._state is CircuitState.HALF_OPEN:
            if outcome in (Outcome.IGNORED, Outcome.CANCELLED):
                self._probes_issued -= 1  # give the permit back
                return
            self._probe_window.record(failed, slow, now)
            self._probes_done += 1
            if self.config.failure_threshold is not None and failed:
                self._transition(CircuitState.OPEN, now)
            elif self._probes_done >= self.config.permitted_calls_in_half_open:
                counts = self._probe_window.counts(now)
                tripped = self._should_trip(counts, 1) if self.config.failure_threshold is None else False
                self._transition(CircuitState.OPEN if tripped else CircuitState.CLOSED, now)

    def _should_trip(self, counts: WindowCounts, minimum: int) -> bool:
        config = self.config
        if config.failure_threshold is not None:
            return self._consecutive_failures >= config.failure_threshold
        if counts.total < minimum:
            return False
        return (
            counts.failure_rate >= config.failure_rate_threshold
            or counts.slow_call_rate >= config.slow_call_rate_threshold
        )

    # -- introspection -------------------------------------------------------------------------------------

    def counts(self, now: float) -> WindowCounts:
        """The window of the current state (probe window in HALF_OPEN, empty when OPEN/FORCED/DISABLED)."""
        self._advance(now)
        if self._state is CircuitState.HALF_OPEN:
            return self._probe_window.counts(now)
        return self._window.counts(now)

    def metrics(self, now: float) -> dict[str, Any]:
        """JSON-ready snapshot; rates are None until ``minimum_number_of_calls`` are buffered."""
        state = self.state_at(now)
        counts = self.counts(now)
        minimum = 1 if state is CircuitState.HALF_OPEN else self.config.minimum_number_of_calls
        enough = counts.total >= minimum
        return {
            "name": self.name,
            "state": str(state),
            "failure_rate": counts.failure_rate if enough else None,
            "slow_call_rate": counts.slow_call_rate if enough else None,
            "buffered_calls": counts.total,
            "failed_calls": counts.failed,
            "successful_calls": counts.successful,
            "slow_calls": counts.slow,
            "slow_failed_calls": counts.slow_failed,
            "consecutive_failures": self._consecutive_failures,
            "not_permitted_calls": self.not_permitted,
            "time_in_state": max(now - self._since, 0.0),
            "consecutive_openings": self._openings,
            "retry_after": self.retry_after(now) if state in (CircuitState.OPEN, CircuitState.FORCED_OPEN) else None,
            "half_open_probes_in_flight": (
                self._probes_issued - self._probes_done if state is CircuitState.HALF_OPEN else 0
            ),
        }
