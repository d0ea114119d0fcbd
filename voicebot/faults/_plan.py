"""Fault plans: scripted rules ("the 3rd hit of store.write raises") and BUGGIFY-style random rules.

A :class:`Plan` is a frozen value. Scripted :class:`Rule` s fire on given hit numbers of each matching point;
:class:`RandomRule` s activate a point for a whole run with probability ``p`` and then fire on each hit with
probability ``q``, drawing a fault by weight. Point patterns are exact names or globs (``ws.*``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import attrs

from ._kinds import Fault

__all__ = ["Plan", "PlanError", "RandomRule", "Rule", "WeightedFault"]


class PlanError(ValueError):
    """A plan (file or dict) is malformed; the message says where and why."""


def _ints(value: int | Iterable[int]) -> tuple[int, ...]:
    items = (value,) if isinstance(value, int) else tuple(value)
    return tuple(sorted(set(items)))


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def matches(pattern: str, name: str) -> bool:
    """True when point ``name`` matches ``pattern`` (exact name or ``fnmatch`` glob, case-sensitive)."""
    return fnmatch.fnmatchcase(name, pattern) if _is_glob(pattern) else name == pattern


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class Rule:
    """Scripted rule: ``fault`` fires at the selected hit numbers of every point matching ``point``.

    Hits are counted per concrete point name from 1 within one activation. Selection: ``at`` (explicit hit
    numbers) if given; otherwise hits ``first..last`` (inclusive, ``last`` open if None), and with ``every=N``
    only ``first, first+N, ...`` where ``first`` defaults to ``N`` (so ``every=3`` means hits 3, 6, 9...).
    ``times`` caps how often the rule fires in total (over all matching points).
    """

    point: str
    fault: Fault
    at: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    first: int | None = attrs.field(default=None, validator=_positive)
    last: int | None = attrs.field(default=None, validator=_positive)
    every: int | None = attrs.field(default=None, validator=_positive)
    times: int | None = attrs.field(default=None, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not self.point:
            raise ValueError("rule point pattern must not be empty")
        if any(n < 1 for n in self.at):
            raise ValueError(f"hit numbers start at 1, got {self.at}")
        if self.at and (self.first is not None or self.last is not None or self.every is not None):
            raise ValueError("use either 'at' or 'first'/'last'/'every', not both")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError(f"last ({self.last}) < first ({self.first})")

    def selects(self, hit: int) -> bool:
        """True when hit number ``hit`` (1-based) is selected by this rule."""
        if self.at:
            return hit in self.at
        first = self.first if self.first is not None else (self.every or 1)
        if hit < first or (self.last is not None and hit > self.last):
            return False
        return self.every is None or (hit - first) % self.every == 0


def _positive_weight(_inst: object, _attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"weight must be > 0, got {value!r}")


@attrs.frozen
class WeightedFault:
    """A fault a random rule may draw, with its relative weight."""

    fault: Fault
    weight: float = attrs.field(default=1.0, converter=float, validator=_positive_weight)


def _weighted(items: Iterable[Fault | WeightedFault | tuple[Fault, float]]) -> tuple[WeightedFault, ...]:
    out: list[WeightedFault] = []
    for item in items:
        if isinstance(item, WeightedFault):
            out.append(item)
        elif isinstance(item, Fault):
            out.append(WeightedFault(item))
        else:
            out.append(WeightedFault(item[0], item[1]))
    return tuple(out)


def _probability(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class RandomRule:
    """BUGGIFY-style rule for every point matching ``point``.

    Per run, each matching point is *activated* with probability ``p`` (one draw from its own stream); an
    activated point then *fires* on each hit with probability ``q`` and draws one of ``faults`` by weight
    among those applicable at that call (a ``drop`` cannot happen at ``await point()``).
    """

    point: str
    faults: tuple[WeightedFault, ...] = attrs.field(converter=_weighted)
    p: float = attrs.field(default=0.5, converter=float, validator=_probability)
    q: float = attrs.field(default=0.1, converter=float, validator=_probability)

    def __attrs_post_init__(self) -> None:
        if not self.point:
            raise ValueError("random rule point pattern must not be empty")
        if not self.faults:
            raise ValueError(f"random rule {self.point!r} lists no faults")


def _rule_tuple(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(rules)


def _random_tuple(rules: Iterable[RandomRule]) -> tuple[RandomRule, ...]:
    return tuple(rules)


@attrs.frozen(kw_only=True)
class Plan:
    """A complete fault plan: scripted rules first (first match wins), then random rules (first match wins)."""

    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_rule_tuple)
    random: tuple[RandomRule, ...] = attrs.field(default=(), converter=_random_tuple)
    name: str = ""
    """Free-form label, kept in statistics."""

    def rules_for(self, point: str) -> tuple[int, ...]:
        """Indexes of the scripted rules matching ``point``."""
        return tuple(i for i, rule in enumerate(self.rules) if matches(rule.point, point))

    def random_for(self, point: str) -> RandomRule | None:
        """The first random rule matching ``point``, if any."""
        for rule in self.random:
            if matches(rule.point, point):
                return rule
        return None
