"""The active fault run and the injection points production code calls.

Inactive path: one ``ContextVar.get`` (whose default is the module-level fallback run) and a ``None`` check.
Trio tasks copy the context of the task that spawned them, so a run activated around ``nursery.start_soon``
reaches every task below it and never leaks into a sibling test server; ``scope="global"`` installs the run
as the fallback for code started outside the ``with`` block.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections import Counter
from collections.abc import Awaitable, Generator, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import trio

from voicebot.errors import classify, split_passthrough

from ._corrupt import corrupt_value
from ._journal import Journal, canonical_json
from ._kinds import AWAIT_KINDS, CHECK_KINDS, MESSAGE_KINDS, Fault, FaultKind
from ._plan import Plan, RandomRule

__all__ = [
    "FaultRun",
    "InvariantViolation",
    "activate",
    "check",
    "current_run",
    "describe_replay",
    "invariant",
    "message",
    "point",
    "record",
    "record_error",
    "stream_seed",
]

M = TypeVar("M")


def stream_seed(master_seed: int, *parts: str) -> int:
    """A stable 64-bit seed derived from ``master_seed`` and ``parts`` with SHA-256 (never the salted ``hash()``)."""
    material = "\x1f".join([str(int(master_seed)), *parts]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


def describe_replay(seed: int, plan_path: str | Path | None = None) -> str:
    """The command line replaying a run: ``voicebot chaos --seed N [--plan FILE]``."""
    import shlex  # noqa: PLC0415 (only for a replay command line)

    command = f"voicebot chaos --seed {int(seed)}"
    if plan_path is not None:
        command += f" --plan {shlex.quote(str(plan_path))}"
    return command


class _PointState:
    """Per-point decision state: its own random streams and its BUGGIFY activation."""

    __slots__ = ("activated", "decide", "mangle", "random_rule", "rule_indexes")

    def __init__(self, run: FaultRun, name: str) -> None:
        self.decide = random.Random(stream_seed(run.seed, name, "decide"))
        self.mangle = random.Random(stream_seed(run.seed, name, "corrupt"))
        self.rule_indexes = run.plan.rules_for(name)
        self.random_rule: RandomRule | None = run.plan.random_for(name)
        self.activated = self.random_rule is not None and self.decide.random() < self.random_rule.p
        if self.random_rule is not None:
            run.journal.record("fault.activation", point=name, active=self.activated, p=self.random_rule.p)


class FaultRun:
    """One activation of a plan: seed, journal, hit counters and statistics. Created by :func:`activate`."""

    def __init__(
        self, plan: Plan, *, seed: int = 0, journal: Journal | None = None, plan_path: str | Path | None = None
    ) -> None:
        self.plan = plan
        self.seed = int(seed)
        self.journal = journal if journal is not None else Journal()
        self.plan_path = plan_path
        self.hits: Counter[str] = Counter()
        self.injections: Counter[tuple[str, str]] = Counter()
        self._points: dict[str, _PointState] = {}
        self._rule_fired: Counter[int] = Counter()
        self.violations: list[str] = []
        """Invariant violations reported through :func:`invariant`, as ``"name: fields-json"`` strings."""

    # -- decisions -------------------------------------------------------------------------------------------

    def _state(self, name: str) -> _PointState:
        state = self._points.get(name)
        if state is None:
            state = self._points[name] = _PointState(self, name)
        return state

    def decide(self, name: str, allowed: frozenset[FaultKind]) -> tuple[int, Fault | None, _PointState]:
        """Count a hit of ``name`` and return ``(hit number, fault to apply or None, state)``.

        The random stream is consumed identically whatever the scripted rules or the call type: one draw per
        hit of an activated point plus one more when it fires.
        """
        self.hits[name] += 1
        hit = self.hits[name]
        state = self._state(name)
        chosen: Fault | None = None
        rr = state.random_rule
        if rr is not None and state.activated and state.decide.random() < rr.q:
            pick = state.decide.random()
            usable = [wf for wf in rr.faults if wf.fault.kind in allowed]
            total = sum(wf.weight for wf in usable)
            acc = 0.0
            for wf in usable:
                acc += wf.weight
                if pick * total < acc:
                    chosen = wf.fault
                    break
            else:
                chosen = usable[-1].fault if usable else None
        for index in state.rule_indexes:
            rule = self.plan.rules[index]
            if rule.fault.kind not in allowed or not rule.selects(hit):
                continue
            if rule.times is not None and self._rule_fired[index] >= rule.times:
                continue
            self._rule_fired[index] += 1
            chosen = rule.fault
            break
        return hit, chosen, state

    def _note(self, name: str, hit: int, fault: Fault, call: str, ctx: dict[str, Any], **extra: Any) -> None:
        self.injections[(name, str(fault.kind))] += 1
        self.journal.record("fault", point=name, hit=hit, call=call, ctx=ctx, **fault.describe(), **extra)

    # -- the three call types --------------------------------------------------------------------------------

    async def hit_point(self, name: str, ctx: dict[str, Any]) -> None:
        """Implementation of an active ``await point(name, **ctx)``."""
        hit, fault, _ = self.decide(name, AWAIT_KINDS)
        if fault is None:
            return
        self._note(name, hit, fault, "point", ctx)
        if fault.kind is FaultKind.DELAY:
            await trio.sleep(fault.seconds)
        elif fault.kind is FaultKind.HANG:
            await trio.sleep_forever()
        else:
            raise fault.make_exception(name, hit)

    def hit_check(self, name: str, ctx: dict[str, Any]) -> None:
        """Implementation of an active ``check(name, **ctx)``."""
        hit, fault, _ = self.decide(name, CHECK_KINDS)
        if fault is not None:
            self._note(name, hit, fault, "check", ctx)
            raise fault.make_exception(name, hit)

    def hit_message(self, name: str, msg: M, ctx: dict[str, Any]) -> list[M]:
        """Implementation of an active ``message(name, msg, **ctx)``."""
        hit, fault, state = self.decide(name, MESSAGE_KINDS)
        if fault is None:
            return [msg]
        if fault.kind is FaultKind.CORRUPT:
            ok, mangled = corrupt_value(msg, state.mangle)
            self._note(name, hit, fault, "message", ctx, supported=ok)
            return [mangled]
        self._note(name, hit, fault, "message", ctx)
        if fault.kind is FaultKind.DROP:
            return []
        if fault.kind is FaultKind.DUPLICATE:
            return [msg, msg]
        raise fault.make_exception(name, hit)

    # -- reporting -------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """JSON-ready statistics: hits per point, injections per point and kind, activated random points."""
        injections: dict[str, dict[str, int]] = {}
        for (name, kind), count in sorted(self.injections.items()):
            injections.setdefault(name, {})[kind] = count
        return {
            "seed": self.seed,
            "plan": self.plan.name,
            "hits": dict(sorted(self.hits.items())),
            "injections": injections,
            "total_hits": sum(self.hits.values()),
            "total_injections": sum(self.injections.values()),
            "activated": sorted(name for name, state in self._points.items() if state.activated),
            "replay": self.replay_command(),
        }

    def replay_command(self) -> str:
        """The command line replaying this run (see :func:`describe_replay`)."""
        return describe_replay(self.seed, self.plan_path)

    def assert_invariants(self) -> None:
        """Raise :class:`InvariantViolation` (an AssertionError) listing every violation and the replay command."""
        if self.violations:
            shown = "\n  ".join(self.violations[:20])
            more = f"\n  ... and {len(self.violations) - 20} more" if len(self.violations) > 20 else ""
            raise InvariantViolation(
                f"{len(self.violations)} invariant violation(s) under seed {self.seed}:\n  {shown}{more}\n"
                f"replay with: {self.replay_command()}"
            )


class InvariantViolation(AssertionError):
    """Raised by :meth:`FaultRun.assert_invariants`; the message ends with the replay command line."""


_GLOBAL: FaultRun | None = None
_ACTIVE: ContextVar[FaultRun | None] = ContextVar("voicebot_fault_run")


#: An exhausted iterator: awaiting something whose ``__await__`` returns it completes at once with None.
_EXHAUSTED: Generator[Any, None, None] = cast(Generator[Any, None, None], iter(()))


class _Done:
    """An already-completed awaitable: what an inactive ``point()`` returns (nothing is allocated)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return _EXHAUSTED


_DONE = _Done()


def point(name: str, /, **ctx: Any) -> Awaitable[None]:
    """Injection point for async code: ``await faults.point("store.write", key=k)``.

    Inactive: returns a completed awaitable (no checkpoint). Active: may raise, delay, hang or raise
    :class:`Disconnect` as the plan says; a hit that does not fire never checkpoints either.
    """
    run = _ACTIVE.get(_GLOBAL)
    if run is None:
        return _DONE
    return run.hit_point(name, ctx)


def check(name: str, /, **ctx: Any) -> None:
    """Injection point for sync code: may raise (or raise :class:`Disconnect`), nothing else."""
    run = _ACTIVE.get(_GLOBAL)
    if run is None:
        return
    run.hit_check(name, ctx)


def message(name: str, msg: M, /, **ctx: Any) -> list[M]:
    """Message injection point: returns the messages to process instead of ``msg``.

    ``[msg]`` normally; ``[]`` when dropped, ``[msg, msg]`` when duplicated, ``[corrupted copy]`` when corrupted;
    may also raise or raise :class:`Disconnect`. Delay/hang faults do not apply here (use :func:`point`).
    """
    run = _ACTIVE.get(_GLOBAL)
    if run is None:
        return [msg]
    return run.hit_message(name, msg, ctx)


def record(kind: str, /, **fields: Any) -> None:
    """Append to the active run's journal (e.g. ``record("breaker", name="store", state="open")``); no-op if none."""
    run = _ACTIVE.get(_GLOBAL)
    if run is None:
        return
    run.journal.record(kind, **fields)


def record_error(exc: BaseException, /, **fields: Any) -> None:
    """Journal the classification of ``exc`` (kind ``error``); no-op if no run is active.

    Passthrough parts (``Cancelled``, ``KeyboardInterrupt``...) are never classified; a pure passthrough is
    journalled as kind ``passthrough`` with its type only. Never raises for a classifiable exception.
    """
    run = _ACTIVE.get(_GLOBAL)
    if run is None:
        return
    control, failure = split_passthrough(exc)
    if failure is None:
        if control is not None:
            run.journal.record("passthrough", exception=type(control), **fields)
        return
    classification = classify(failure)
    error = classification.error
    run.journal.record(
        "error",
        code=error.code,
        category=str(error.category),
        severity=error.severity.label,
        exceptions=[type(leaf) for leaf in classification.originals],
        **fields,
    )


def invariant(ok: bool, name: str, /, **fields: Any) -> bool:
    """Report whether invariant ``name`` holds; returns ``ok`` unchanged so it can guard code paths.

    With an active run a violation is journalled (kind ``invariant``) and kept in ``run.violations`` for
    :meth:`FaultRun.assert_invariants`; without one this is a no-op. It never raises, so production code can
    call it at the place where a broken invariant would be noticed.
    """
    if ok:
        return True
    run = _ACTIVE.get(_GLOBAL)
    if run is not None:
        run.journal.record("invariant", name=name, **fields)
        run.violations.append(f"{name}: {canonical_json(fields)}")
    return False


def current_run() -> FaultRun | None:
    """The run active in this context (or the global fallback), if any."""
    return _ACTIVE.get(_GLOBAL)


@contextlib.contextmanager
def activate(
    plan: Plan | None = None,
    *,
    seed: int = 0,
    journal: Journal | None = None,
    plan_path: str | Path | None = None,
    scope: Literal["context", "global"] = "context",
) -> Iterator[FaultRun]:
    """Activate ``plan`` (empty plan: journal only) for the ``with`` block and yield its :class:`FaultRun`.

    ``scope="context"`` sets the context variable (this task and tasks it spawns from now on);
    ``scope="global"`` sets the module-level fallback seen by every context without its own run.
    ``plan_path`` only feeds the replay command line.
    """
    global _GLOBAL  # noqa: PLW0603 -- a plain module global keeps the inactive fast path to one lookup
    if scope not in ("context", "global"):
        raise ValueError(f"scope must be 'context' or 'global', got {scope!r}")
    run = FaultRun(plan if plan is not None else Plan(), seed=seed, journal=journal, plan_path=plan_path)
    run.journal.record("fault.run", seed=run.seed, plan=run.plan.name, scope=scope)
    if scope == "global":
        previous = _GLOBAL
        _GLOBAL = run
        try:
            yield run
        finally:
            _GLOBAL = previous
    else:
        token = _ACTIVE.set(run)
        try:
            yield run
        finally:
            _ACTIVE.reset(token)
