"""One shared breaker per named resource."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import trio

from ._breaker import CircuitBreaker
from ._config import BreakerConfig, with_options
from ._core import BreakerEvent

__all__ = ["BreakerRegistry"]


class BreakerRegistry:
    """Get-or-create breakers by resource name (``"persistence"``, ``"provider:openai"``, ...).

    Every breaker created here gets the registry's listeners, so one listener can feed error statistics.
    """

    def __init__(
        self, default_config: BreakerConfig | None = None,
        listeners: Iterable[Callable[[BreakerEvent], object]] = (),
    ) -> None:
        """Breakers created without a config use ``default_config`` (or the :class:`BreakerConfig` defaults)."""
        self.default_config = default_config or BreakerConfig()
        self._listeners: list[Callable[[BreakerEvent], object]] = list(listeners)
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, config: BreakerConfig | None = None, **options: Any) -> CircuitBreaker:
        """The breaker named ``name``, created on first use from ``config`` / ``options``.

        Asking for an existing name with a *different* explicit configuration raises ``ValueError``
        (two call sites disagreeing about one resource's policy is a bug, not something to hide).
        """
        existing = self._breakers.get(name)
        wanted: BreakerConfig | None = None
        if config is not None or options:
            wanted = with_options(config or self.default_config, options)
        if existing is not None:
            if wanted is not None and wanted != existing.config:
                raise ValueError(f"breaker {name!r} already exists with a different configuration")
            return existing
        breaker = CircuitBreaker(name, config=wanted or self.default_config, listeners=self._listeners)
        self._breakers[name] = breaker
        return breaker

    def add_listener(self, listener: Callable[[BreakerEvent], object]) -> None:
        """Register ``listener`` on every current and future breaker."""
        self._listeners.append(listener)
        for breaker in self._breakers.values():
            breaker.add_listener(listener)

    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget a breaker (callers holding it keep using it)."""
        return self._breakers.pop(name, None)

    def __contains__(self, name: object) -> bool:
        """Whether a breaker of that name exists."""
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        """The breakers, in creation order."""
        return iter(tuple(self._breakers.values()))

    def __len__(self) -> int:
        """Number of breakers."""
        return len(self._breakers)

    def snapshot(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """JSON-ready metrics of every breaker, keyed by name (read inside Trio unless ``now`` is given)."""
        at = trio.current_time() if now is None else now
        return {name: breaker.metrics(at) for name, breaker in self._breakers.items()}
