"""The fault journal: one line per injection / classified error / breaker transition / session event.

Each line is ``"%.6f\\t%s\\t%s\\n" % (virtual_time, kind, canonical_json(fields))``. Virtual time is
``trio.current_time()`` inside Trio (MockClock in tests) and ``0.0`` outside. Canonical JSON has sorted keys,
no spaces and ASCII only; values that are not JSON types are reduced to stable text (never ``repr`` with
memory addresses), so the same run gives byte-identical journals.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

__all__ = ["Journal", "JournalEntry", "canonical_json", "first_divergence", "jsonable"]

JournalEntry = tuple[float, str, dict[str, Any]]


def jsonable(value: Any) -> Any:
    """Reduce ``value`` to a deterministic JSON-ready structure."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, bytes | bytearray):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, BaseException):
        return {"exception": f"{type(value).__module__}.{type(value).__qualname__}", "detail": str(value)[:200]}
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def canonical_json(fields: Mapping[str, Any]) -> str:
    """Sorted-key, compact, ASCII JSON of ``fields`` (after :func:`jsonable`)."""
    return json.dumps(jsonable(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0


class Journal:
    """Append-only, in-memory journal of a fault run (see the module docstring for the line format)."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list[str] = []

    def record(self, kind: str, /, **fields: Any) -> None:
        """Append one line: current virtual time, ``kind`` and the canonical JSON of ``fields``."""
        if not kind or any(ch in kind for ch in "\t\n"):
            raise ValueError(f"invalid journal kind {kind!r}")
        self._lines.append(f"{_now():.6f}\t{kind}\t{canonical_json(fields)}\n")

    def getvalue(self) -> str:
        """The whole journal as text."""
        return "".join(self._lines)

    def lines(self) -> list[str]:
        """The journal lines (each ending in a newline)."""
        return list(self._lines)

    def entries(self) -> list[JournalEntry]:
        """The journal parsed back into ``(time, kind, fields)`` tuples."""
        out: list[JournalEntry] = []
        for line in self._lines:
            stamp, kind, body = line.rstrip("\n").split("\t", 2)
            out.append((float(stamp), kind, json.loads(body)))
        return out

    def dump(self, path: str | Path) -> None:
        """Write the journal to ``path`` (UTF-8, ``\\n`` line endings)."""
        Path(path).write_text(self.getvalue(), encoding="utf-8", newline="\n")

    def __len__(self) -> int:
        return len(self._lines)


def first_divergence(expected: str, actual: str) -> str | None:
    """Describe the first differing line of two journals (for replay assertions), or None if equal."""
    if expected == actual:
        return None
    left, right = expected.splitlines(), actual.splitlines()
    for number, (a, b) in enumerate(zip(left, right, strict=False), start=1):
        if a != b:
            return f"line {number} differs:\n- {a}\n+ {b}"
    number = min(len(left), len(right)) + 1
    if len(left) > len(right):
        return f"line {number} missing from actual:\n- {left[number - 1]}"
    if len(right) > len(left):
        return f"line {number} extra in actual:\n+ {right[number - 1]}"
    return "journals differ only in line endings"
