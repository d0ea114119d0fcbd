"""Plan files: TOML or JSON, with one schema. Example (TOML; JSON uses the same keys)::

    version = 1                      # optional, only 1 is supported
    name = "flaky-store"             # optional label

    [[rule]]                         # scripted; first matching rule wins
    point = "store.write"            # exact name or glob ("ws.*")
    at = [3]                         # or: first = 3, last = 5 / every = 10 (first defaults to every) / times = 2
    fault = "raise"                  # raise | delay | hang | disconnect | drop | duplicate | corrupt
    exception = "sqlite3.OperationalError"
    args = ["database is locked"]    # optional; kwargs = { code = "x" } for VoiceBotErrors

    [[random]]                       # BUGGIFY: active per run with p, fires per hit with q
    point = "ws.*"
    p = 0.5
    q = 0.05
    faults = [{ fault = "drop", weight = 3 }, { fault = "delay", seconds = 2.5 }]

Exception types are named by dotted path and resolved with :func:`resolve_exception` from an allow-list
of modules. Unknown keys are errors, so typos fail loudly with the offending location.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._kinds import Fault, FaultKind, resolve_exception
from ._plan import Plan, PlanError, RandomRule, Rule, WeightedFault

__all__ = ["load_plan", "parse_plan", "plan_to_dict", "plan_to_json"]

_PLAN_KEYS = {"version", "name", "rule", "random"}
_FAULT_KEYS = {"fault", "exception", "args", "kwargs", "seconds", "reason"}
_RULE_KEYS = _FAULT_KEYS | {"point", "at", "first", "last", "every", "times"}
_RANDOM_KEYS = {"point", "p", "q", "faults"}
_WEIGHTED_KEYS = _FAULT_KEYS | {"weight"}
FORMAT_VERSION = 1


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(f"{where}: expected a table/object, got {type(value).__name__}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PlanError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(allowed))})"
        )


def _get(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = data.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise PlanError(f"{where}: {key!r} must be {_names(types)}, got bool")
    if not isinstance(value, types):
        raise PlanError(f"{where}: {key!r} must be {_names(types)}, got {type(value).__name__}")
    return value


def _names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def _parse_fault(data: Mapping[str, Any], where: str) -> Fault:
    kind_name = _get(data, "fault", str, where)
    if kind_name is None:
        raise PlanError(f"{where}: missing 'fault' (one of {', '.join(k.value for k in FaultKind)})")
    try:
        kind = FaultKind(kind_name)
    except ValueError:
        raise PlanError(
            f"{where}: unknown fault kind {kind_name!r} (one of {', '.join(k.value for k in FaultKind)})"
        ) from None
    exc_name = _get(data, "exception", str, where)
    if (exc_name is None) == (kind is FaultKind.RAISE):
        raise PlanError(f"{where}: 'exception' is required for fault 'raise' and only allowed there")
    try:
        exc_type = resolve_exception(exc_name) if exc_name is not None else None
        return Fault(
            kind=kind,
            exc_type=exc_type,
            args=_get(data, "args", list, where, ()),
            kwargs=_get(data, "kwargs", Mapping, where, {}),
            seconds=float(_get(data, "seconds", (int, float), where, 0.0)),
            reason=_get(data, "reason", str, where, ""),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PlanError):
            raise
        raise PlanError(f"{where}: {exc}") from None


def _parse_rule(data: Mapping[str, Any], where: str) -> Rule:
    _check_keys(data, _RULE_KEYS, where)
    point = _get(data, "point", str, where)
    if point is None:
        raise PlanError(f"{where}: missing 'point'")
    fault = _parse_fault({k: v for k, v in data.items() if k in _FAULT_KEYS}, where)
    at = _get(data, "at", (int, list), where, ())
    try:
        return Rule(
            point=point,
            fault=fault,
            at=at,
            first=_get(data, "first", int, where),
            last=_get(data, "last", int, where),
            every=_get(data, "every", int, where),
            times=_get(data, "times", int, where),
        )
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{where}: {exc}") from None


def _parse_random(data: Mapping[str, Any], where: str) -> RandomRule:
    _check_keys(data, _RANDOM_KEYS, where)
    point = _get(data, "point", str, where)
    if point is None:
        raise PlanError(f"{where}: missing 'point'")
    items = _get(data, "faults", list, where, [])
    weighted: list[WeightedFault] = []
    for i, item in enumerate(items):
        item_where = f"{where}.faults[{i}]"
        table = _table(item, item_where)
        _check_keys(table, _WEIGHTED_KEYS, item_where)
        fault = _parse_fault({k: v for k, v in table.items() if k != "weight"}, item_where)
        try:
            weighted.append(WeightedFault(fault, _get(table, "weight", (int, float), item_where, 1.0)))
        except ValueError as exc:
            raise PlanError(f"{item_where}: {exc}") from None
    try:
        return RandomRule(
            point=point,
            faults=tuple(weighted),
            p=_get(data, "p", (int, float), where, 0.5),
            q=_get(data, "q", (int, float), where, 0.1),
        )
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{where}: {exc}") from None


def parse_plan(data: Mapping[str, Any], *, source: str = "plan") -> Plan:
    """Build a :class:`Plan` from the parsed TOML/JSON structure; raises :class:`PlanError` naming ``source``."""
    top = _table(data, source)
    _check_keys(top, _PLAN_KEYS, source)
    version = _get(top, "version", int, source, FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise PlanError(f"{source}: unsupported plan version {version} (expected {FORMAT_VERSION})")
    rules = [
        _parse_rule(_table(item, f"{source}: rule[{i}]"), f"{source}: rule[{i}]")
        for i, item in enumerate(_get(top, "rule", list, source, []))
    ]
    randoms = [
        _parse_random(_table(item, f"{source}: random[{i}]"), f"{source}: random[{i}]")
        for i, item in enumerate(_get(top, "random", list, source, []))
    ]
    return Plan(rules=tuple(rules), random=tuple(randoms), name=_get(top, "name", str, source, ""))


def load_plan(path: str | Path) -> Plan:
    """Load a plan from a ``.toml`` or ``.json`` file; raises :class:`PlanError` with the path on any problem."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PlanError(f"{path}: plan files must end in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read plan file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path}: invalid {suffix[1:].upper()}: {exc}") from None
    return parse_plan(data, source=str(path))


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The file structure of ``plan`` (inverse of :func:`parse_plan` for JSON-representable arguments)."""
    rules: list[dict[str, Any]] = []
    for rule in plan.rules:
        entry: dict[str, Any] = {"point": rule.point, **rule.fault.describe()}
        if rule.at:
            entry["at"] = list(rule.at)
        for key in ("first", "last", "every", "times"):
            value = getattr(rule, key)
            if value is not None:
                entry[key] = value
        rules.append(entry)
    randoms = [
        {
            "point": rr.point,
            "p": rr.p,
            "q": rr.q,
            "faults": [{**wf.fault.describe(), "weight": wf.weight} for wf in rr.faults],
        }
        for rr in plan.random
    ]
    out: dict[str, Any] = {"version": FORMAT_VERSION}
    if plan.name:
        out["name"] = plan.name
    out["rule"] = rules
    out["random"] = randoms
    return out


def plan_to_json(plan: Plan) -> str:
    """Canonical JSON text of ``plan`` (sorted keys, two-space indent), loadable with :func:`load_plan`."""
    return json.dumps(plan_to_dict(plan), sort_keys=True, indent=2) + "\n"
