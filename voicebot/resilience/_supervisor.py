"""Erlang-style supervision of Trio tasks: restart policies, a sliding restart budget, escalation."""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVarTuple

import attrs
import trio

from voicebot.errors import split_passthrough

from ._backoff import Backoff
from ._errors import RestartBudgetExceeded

__all__ = ["ChildState", "ChildStatus", "Policy", "Supervisor"]

logger = logging.getLogger("voicebot.resilience")

Ts = TypeVarTuple("Ts")


class Policy(enum.StrEnum):
    """When a child is restarted."""

    PERMANENT = "permanent"
    """Always: after a failure and after a normal return."""
    TRANSIENT = "transient"
    """Only after a failure."""
    TEMPORARY = "temporary"
    """Never (failures are still reported)."""


class ChildState(enum.StrEnum):
    """Lifecycle of a supervised child."""

    RUNNING = "running"
    BACKOFF = "backoff"
    """Failed or returned; waiting before its restart."""
    EXITED = "exited"
    """Returned normally and not restarted."""
    FAILED = "failed"
    """Failed and not restarted (temporary child, or the budget was spent)."""
    CANCELLED = "cancelled"
    """Stopped by cancellation (shutdown, ``stop_child``, escalation); never restarted."""


@attrs.define(kw_only=True)
class ChildStatus:
    """Introspection record of one child (a live object; :meth:`to_dict` for a JSON view)."""

    name: str
    policy: Policy
    state: ChildState = ChildState.RUNNING
    restarts: int = 0
    failures: int = 0
    started_at: float = 0.0
    last_failure: BaseException | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "name": self.name, "policy": str(self.policy), "state": str(self.state), "restarts": self.restarts,
            "failures": self.failures, "started_at": self.started_at,
            "last_failure": None if self.last_failure is None else type(self.last_failure).__name__,
        }


BackoffSpec = Backoff | float | Callable[[int], float]


class Supervisor:
    """Runs children in its own nursery and restarts them according to their :class:`Policy`.

    ``async with Supervisor(max_restarts=5, within=60.0) as sup: sup.start_child("name", fn)``. Like a nursery,
    leaving the block waits for the children (permanent ones run until cancelled); :meth:`cancel` - or
    cancellation of the enclosing scope - stops every child without restarting it. At most ``max_restarts``
    restarts (all children together) may happen in any ``within`` seconds; the restart that would exceed
    that raises :class:`RestartBudgetExceeded` (cause: the last failure) out of the ``async with``, after
    cancelling the other children. Every failure is logged, recorded in :attr:`children` and passed to
    ``on_failure(name, exc)``.

    ``backoff`` is the wait before a restart, as a :class:`Backoff` (deterministic unless jittered with
    ``rng``), a constant or ``f(n)``; ``n`` is 1 + the child's restarts still inside the budget window, so a
    child that stayed up for ``within`` seconds starts over at the base delay.
    """

    def __init__(
        self, *, max_restarts: int = 5, within: float = 60.0, backoff: BackoffSpec = 0.0,
        on_failure: Callable[[str, BaseException], object] | None = None, name: str = "supervisor",
        rng: random.Random | None = None,
    ) -> None:
        """Configure the budget, the backoff and the failure callback."""
        if max_restarts < 0 or within <= 0:
            raise ValueError("max_restarts must be >= 0 and within > 0")
        self.max_restarts = max_restarts
        self.within = within
        self.backoff = backoff
        self.on_failure = on_failure
        self.name = name
        self.rng = rng if rng is not None else random.Random()
        self._restarts: deque[tuple[float, str]] = deque()
        self._children: dict[str, ChildStatus] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._nursery_manager: Any = None
        self._nursery: trio.Nursery | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Supervisor:
        """Open the supervisor's nursery."""
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> bool:
        """Wait for the children; unwrap a lone :class:`RestartBudgetExceeded` from the nursery's group."""
        try:
            result: bool = await self._nursery_manager.__aexit__(etype, exc, tb)
        except BaseExceptionGroup as group:
            leaves = group.exceptions
            if len(leaves) == 1 and isinstance(leaves[0], RestartBudgetExceeded):
                raise leaves[0] from leaves[0].__cause__
            raise
        finally:
            self._nursery = None
        return result

    def cancel(self) -> None:
        """Cancel every child (they are not restarted); the ``async with`` then exits normally."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- children ------------------------------------------------------------------------------------------

    def start_child(
        self, name: str, fn: Callable[[*Ts], Awaitable[object]], *args: *Ts,
        policy: Policy = Policy.PERMANENT,
    ) -> ChildStatus:
        """Start ``await fn(*args)`` as child ``name`` (unique among live children) under ``policy``."""
        if self._nursery is None:
            raise RuntimeError("start_child() needs an active 'async with Supervisor()' block")
        current = self._children.get(name)
        if current is not None and current.state in (ChildState.RUNNING, ChildState.BACKOFF):
            raise ValueError(f"child {name!r} is already running")
        status = ChildStatus(name=name, policy=policy, started_at=trio.current_time())
        scope = trio.CancelScope()
        self._children[name] = status
        self._scopes[name] = scope
        self._nursery.start_soon(self._supervise, status, scope, fn, args, name=f"{self.name}:{name}")
        return status

    def stop_child(self, name: str) -> None:
        """Cancel one child; it ends CANCELLED and is not restarted."""
        scope = self._scopes.get(name)
        if scope is not None:
            scope.cancel()

    @property
    def children(self) -> dict[str, ChildStatus]:
        """Status of every child started so far, by name."""
        return dict(self._children)

    def status(self) -> dict[str, Any]:
        """JSON-ready view of the supervisor and its children."""
        now = trio.current_time()
        return {
            "name": self.name, "max_restarts": self.max_restarts, "within": self.within,
            "restarts_in_window": sum(1 for t, _ in self._restarts if t > now - self.within),
            "children": {name: child.to_dict() for name, child in self._children.items()},
        }

    async def _supervise(
        self, status: ChildStatus, scope: trio.CancelScope, fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
    ) -> None:
        try:
            with scope:
                await self._run_child(status, fn, args)
        finally:
            if status.state in (ChildState.RUNNING, ChildState.BACKOFF):
                status.state = ChildState.CANCELLED

    async def _run_child(
        self, status: ChildStatus, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...],
    ) -> None:
        while True:
            status.state = ChildState.RUNNING
            status.started_at = trio.current_time()
            failure: BaseException | None = None
            try:
                await fn(*args)
            except BaseException as exc:
                passthrough, _ = split_passthrough(exc)
                if passthrough is not None or not isinstance(exc, Exception):
                    raise
                failure = exc
                self._report(status, exc)
            if failure is None and status.policy is not Policy.PERMANENT:
                status.state = ChildState.EXITED
                return
            if failure is not None and status.policy is Policy.TEMPORARY:
                status.state = ChildState.FAILED
                return
            status.state = ChildState.BACKOFF
            await trio.sleep(self._charge_restart(status, failure))
            status.restarts += 1

    def _report(self, status: ChildStatus, exc: Exception) -> None:
        status.failures += 1
        status.last_failure = exc
        logger.warning("supervisor %r: child %r failed: %r", self.name, status.name, exc)
        if self.on_failure is not None:
            try:
                self.on_failure(status.name, exc)
            except Exception:
                logger.exception("supervisor %r: on_failure callback failed", self.name)

    def _charge_restart(self, status: ChildStatus, failure: BaseException | None) -> float:
        """Take one restart from the budget (escalating if spent) and return the wait before it."""
        now = trio.current_time()
        while self._restarts and self._restarts[0][0] <= now - self.within:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            status.state = ChildState.FAILED
            error = RestartBudgetExceeded(
                f"child {status.name!r} would exceed {self.max_restarts} restarts in {self.within}s",
                child=status.name, last_failure=failure, subsystem=self.name,
                context={"supervisor": self.name, "child": status.name, "restarts": status.restarts},
            )
            raise error from failure
        n = 1 + sum(1 for _, name in self._restarts if name == status.name)
        self._restarts.append((now, status.name))
        backoff = self.backoff
        if isinstance(backoff, Backoff):
            return backoff.delay(n, self.rng)
        if callable(backoff):
            return backoff(n)
        return backoff
