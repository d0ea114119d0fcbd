"""Listeners that copy what the server decides and reports into the fault journal (``voicebot.faults``): errors,
breaker transitions and session notices, so a seeded fault run can be replayed and compared event by event."""

from __future__ import annotations

from typing import Any

from .. import faults
from ..errors import ErrorRecord, VoiceBotError
from ..hub import Notice, SessionGone

__all__ = ["journal_breaker", "journal_error", "journal_notice"]


def journal_error(record: ErrorRecord, error: VoiceBotError) -> None:
    """An error the server handled, as a journal ``error`` event."""
    faults.record("error", code=record.code, category=record.category, severity=record.severity,
                  component=record.component, cid=record.correlation_id, type=record.message_type)


def journal_breaker(event: Any) -> None:  # a resilience.BreakerEvent
    """A circuit breaker's state transition, as a journal ``breaker`` event (other breaker events are not)."""
    if event.to_state is not None:  # state transitions only
        faults.record("breaker", breaker=event.breaker, from_state=event.from_state, to_state=event.to_state)


def journal_notice(action: Notice | SessionGone) -> None:
    """A session notice (joined, left, gone...), as a journal ``session`` event."""
    if isinstance(action, Notice):
        faults.record("session", event=action.event, fields=action.fields)
    else:
        faults.record("session", event="session.gone", peer_id=action.peer_id, reason=action.reason)
