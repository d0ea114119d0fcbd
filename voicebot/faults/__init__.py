"""Deterministic fault injection for voicebot.

Production code calls injection points wherever something can really fail::

    await faults.point("store.write", key=key)        # may raise / delay / hang / Disconnect
    faults.check("store.read")                        # sync code: may raise / Disconnect
    for msg in faults.message("ws.recv", raw): ...    # may drop / duplicate / corrupt / raise

Each is a no-op (one context-variable lookup and a ``None`` check) unless a plan is active::

    plan = faults.Plan(rules=[faults.Rule(point="store.write", at=3,
                                          fault=faults.raises(sqlite3.OperationalError, "database is locked"))])
    with faults.activate(plan, seed=42) as run:
        ...
    run.journal.getvalue(); run.stats(); run.replay_command()

Time comes only from Trio's clock, randomness only from per-point ``random.Random`` streams seeded by
SHA-256 of (seed, point name), so the same seed, plan and sequence of hits give a byte-identical journal.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._corrupt import corrupt_value
from ._journal import Journal, JournalEntry, canonical_json, first_divergence, jsonable
from ._kinds import (
    ALLOWED_EXCEPTION_MODULES,
    Disconnect,
    Fault,
    FaultKind,
    corrupt,
    delay,
    disconnect,
    drop,
    duplicate,
    exception_name,
    hang,
    raises,
    resolve_exception,
)
from ._plan import Plan, PlanError, RandomRule, Rule, WeightedFault, matches
from ._runtime import (
    FaultRun,
    InvariantViolation,
    activate,
    check,
    current_run,
    describe_replay,
    invariant,
    message,
    point,
    record,
    record_error,
    stream_seed,
)

if TYPE_CHECKING:
    from ._planfile import load_plan, parse_plan, plan_to_dict, plan_to_json

__all__ = [
    "ALLOWED_EXCEPTION_MODULES",
    "Disconnect",
    "Fault",
    "FaultKind",
    "FaultRun",
    "InvariantViolation",
    "Journal",
    "JournalEntry",
    "Plan",
    "PlanError",
    "RandomRule",
    "Rule",
    "WeightedFault",
    "activate",
    "canonical_json",
    "check",
    "corrupt",
    "corrupt_value",
    "current_run",
    "delay",
    "describe_replay",
    "disconnect",
    "drop",
    "duplicate",
    "exception_name",
    "first_divergence",
    "hang",
    "invariant",
    "jsonable",
    "load_plan",
    "matches",
    "message",
    "parse_plan",
    "plan_to_dict",
    "plan_to_json",
    "point",
    "raises",
    "record",
    "record_error",
    "resolve_exception",
    "stream_seed",
]

# The plan-file schema (pydantic models) loads with the first plan file read or written, not with every server.
__getattr__ = lazy_exports(__name__, {
    "load_plan": "._planfile",
    "parse_plan": "._planfile",
    "plan_to_dict": "._planfile",
    "plan_to_json": "._planfile",
})
