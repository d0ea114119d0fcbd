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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from ._kinds import Fault, FaultKind, resolve_exception
from ._plan import Plan, PlanError, RandomRule, Rule, WeightedFault

__all__ = ["load_plan", "parse_plan", "plan_to_dict", "plan_to_json"]

FORMAT_VERSION = 1
_T = TypeVar("_T")
_KINDS = frozenset(k.value for k in FaultKind)
_BAD_VALUE = "plan_value"  # our validators' error type; the context's ``text`` is the whole message


class _Schema(BaseModel):
    """Strict (no coercion: ``"3"`` is not an int, ``true`` is not a number) and closed (unknown keys fail)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class _RaiseSpec(_Schema):
    fault: Literal["raise"]
    exception: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}

    @field_validator("exception")
    @classmethod
    def _resolvable(cls, value: str) -> str:
        try:
            resolve_exception(value)
        except ValueError as exc:  # names the problem (module not allowed, not an exception…)
            raise PydanticCustomError(_BAD_VALUE, "{text}", {"text": str(exc)}) from None
        return value

    def build(self) -> Fault:
        return Fault(kind=FaultKind.RAISE, exc_type=resolve_exception(self.exception), args=tuple(self.args),
                     kwargs=self.kwargs)


class _DelaySpec(_Schema):
    fault: Literal["delay"]
    seconds: Annotated[float, Field(ge=0)] = 0.0

    def build(self) -> Fault:
        return Fault(kind=FaultKind.DELAY, seconds=self.seconds)


class _DisconnectSpec(_Schema):
    fault: Literal["disconnect"]
    reason: str = ""

    def build(self) -> Fault:
        return Fault(kind=FaultKind.DISCONNECT, reason=self.reason)


class _PlainSpec(_Schema):
    fault: Literal["hang", "drop", "duplicate", "corrupt"]

    def build(self) -> Fault:
        return Fault(kind=FaultKind(self.fault))


_FaultSpec = Annotated[_RaiseSpec | _DelaySpec | _DisconnectSpec | _PlainSpec, Field(discriminator="fault")]
"""One fault, discriminated by its ``fault`` kind: each kind admits exactly its own parameters."""

_HitNumber = Annotated[int, Field(ge=1)]


def _nest_fault(data: Any, own: frozenset[str]) -> Any:
    """Files write a rule's fault flat (``point = "x"`` beside ``fault = "drop"``); the schema nests it."""
    if not isinstance(data, dict):
        return data
    return {**{k: v for k, v in data.items() if k in own},
            "fault": {k: v for k, v in data.items() if k not in own}}


class _RuleSpec(_Schema):
    point: Annotated[str, Field(min_length=1)]
    fault: _FaultSpec
    at: list[_HitNumber] = []
    first: _HitNumber | None = None
    last: _HitNumber | None = None
    every: _HitNumber | None = None
    times: _HitNumber | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and type(data.get("at")) is int:
            data = {**data, "at": [data["at"]]}  # `at = 3` is short for `at = [3]`
        return _nest_fault(data, frozenset({"point", "at", "first", "last", "every", "times"}))

    def build(self) -> Rule:
        return Rule(point=self.point, fault=self.fault.build(), at=self.at, first=self.first, last=self.last,
                    every=self.every, times=self.times)


class _WeightedSpec(_Schema):
    fault: _FaultSpec
    weight: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return _nest_fault(data, frozenset({"weight"}))


class _RandomSpec(_Schema):
    point: Annotated[str, Field(min_length=1)]
    faults: Annotated[list[_WeightedSpec], Field(min_length=1)]
    p: Annotated[float, Field(ge=0, le=1)] = 0.5
    q: Annotated[float, Field(ge=0, le=1)] = 0.1

    def build(self) -> RandomRule:
        return RandomRule(point=self.point, p=self.p, q=self.q,
                          faults=tuple(WeightedFault(w.fault.build(), w.weight) for w in self.faults))


class _PlanSpec(_Schema):
    version: Literal[1] = 1
    name: str = ""
    rule: list[_RuleSpec] = []
    random: list[_RandomSpec] = []


def _where(loc: tuple[int | str, ...]) -> str:
    """``('rule', 0, 'fault', 'drop', 'exception')`` → ``rule[0].exception`` (as the key stands in the file)."""
    out = ""
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "fault" and i + 1 < len(parts) and parts[i + 1] in _KINDS:
            i += 2  # the nested fault and its union tag are the schema's, not the file's
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        i += 1
    return out


def _problem(error: ErrorDetails) -> str:
    """One validation error as ``location: what is wrong``, in the file's terms."""
    kinds = ", ".join(k.value for k in FaultKind)
    loc, kind = error["loc"], error["type"]
    if kind in {"missing", "extra_forbidden"}:  # the key is the problem: name it at its table
        where, text = _where(loc[:-1]), f"{'missing' if kind == 'missing' else 'unknown key'} {loc[-1]!r}"
        tag = next((part for part in loc if part in _KINDS), None)
        if tag is not None and loc[-1] != "fault":
            text += f" ({'required' if kind == 'missing' else 'not a parameter'} for fault {tag!r})"
    elif kind == "union_tag_not_found":
        where, text = _where(loc), f"missing 'fault' (one of {kinds})"
    elif kind == "union_tag_invalid":
        where, text = _where(loc), f"unknown fault kind {error['input'].get('fault')!r} (one of {kinds})"
    elif kind in {"model_type", "dict_type"}:
        where, text = _where(loc), f"expected a table/object, got {type(error['input']).__name__}"
    elif loc == ("version",):
        where, text = "", f"unsupported plan version {error['input']!r} (expected {FORMAT_VERSION})"
    elif kind == _BAD_VALUE:
        where, text = _where(loc), str((error.get("ctx") or {})["text"])
    else:
        where, text = _where(loc), f"{error['msg']}, got {error['input']!r}"
    return f"{where}: {text}" if where else text


def parse_plan(data: Any, *, source: str = "plan") -> Plan:
    """Build a :class:`Plan` from the parsed TOML/JSON structure; raises :class:`PlanError` naming ``source``
    and the location of every problem (``plan.toml: rule[0].every: Input should be a valid integer``)."""
    try:
        spec = _PlanSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors(include_url=False)]
        raise PlanError(f"{source}: " + "; ".join(problems)) from None
    built_rules: list[Rule] = []
    for i, rule in enumerate(spec.rule):
        built_rules.append(_built(rule.build, f"{source}: rule[{i}]"))
    randoms = [_built(rr.build, f"{source}: random[{i}]") for i, rr in enumerate(spec.random)]
    return Plan(rules=tuple(built_rules), random=tuple(randoms), name=spec.name)


def _built(build: Callable[[], _T], where: str) -> _T:
    """Cross-field rules the schema cannot express (``at`` with ``first``, ``last < first``, constructible
    exception arguments) are checked by the plan types themselves; their ``ValueError`` gets the location."""
    try:
        return build()
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{where}: {exc}") from None


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
    import tomllib  # noqa: PLC0415 (a server that never reads a TOML plan does not load the parser)

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
