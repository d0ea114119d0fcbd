"""Listener plumbing shared by breakers and retry strategies: sync callables, failures isolated."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["ListenerSet"]

E = TypeVar("E")

logger = logging.getLogger("voicebot.resilience")


class ListenerSet(Generic[E]):
    """An ordered set of sync listeners; a listener that raises is logged and counted, never propagated."""

    def __init__(self, listeners: Iterable[Callable[[E], object]] = ()) -> None:
        """Start with ``listeners`` (in call order)."""
        self._listeners: list[Callable[[E], object]] = list(listeners)
        self.errors = 0
        """How many times a listener raised."""

    def add(self, listener: Callable[[E], object]) -> None:
        """Register ``listener`` (idempotent)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove(self, listener: Callable[[E], object]) -> None:
        """Unregister ``listener`` if present."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def __len__(self) -> int:
        """Number of registered listeners."""
        return len(self._listeners)

    def emit(self, event: E) -> None:
        """Call every listener with ``event``; exceptions (not BaseExceptions) are logged and swallowed."""
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                self.errors += 1
                logger.exception("resilience listener %r failed on %r", listener, event)
