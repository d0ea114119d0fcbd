"""The text-safety rule: what a decoded message may contain, checked once at decode for every message type.

A frame that passes :func:`loads` holds only well-formed Unicode (no lone UTF-16 surrogates: they cannot be encoded
as UTF-8, so echoing one would kill the writer that sends it), integers within the I-JSON safe range (±(2**53−1),
RFC 7493 — checked on the digit string *before* conversion, so a 5,000-digit number costs nothing), finite floats
(no ``NaN``/``Infinity``, no ``1e999``) and at most :data:`MAX_DEPTH` levels of nesting. Anything else is a
:class:`~voicebot.errors.ValidationError` naming the offending field (dotted path) — never another exception.

:func:`sendable` is the outgoing half (defence in depth): it turns any string into one a WebSocket text frame can
carry, replacing lone surrogates with U+FFFD as browsers do for USVString.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from ..errors import ValidationError

__all__ = ["MAX_DEPTH", "MAX_FLOAT_CHARS", "MAX_INT", "MAX_INT_DIGITS", "dumps", "loads", "sendable"]

#: Deepest accepted nesting: the message object itself is level 1, ``{"a": {"b": [1]}}`` is 3.
MAX_DEPTH = 32
#: Largest accepted integer magnitude (I-JSON safe integers, exactly representable as a double).
MAX_INT = 2**53 - 1
#: Digits an integer literal may have (checked before ``int()`` runs).
MAX_INT_DIGITS = 16
#: Longest field path reported in an error (keys come from the client).
MAX_FIELD_CHARS = 200
#: Characters a float literal may have (checked before ``float()`` runs).
MAX_FLOAT_CHARS = 64

# A JSON escape that produces a UTF-16 surrogate: only then can a decoded string hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A run of number characters longer than MAX_FLOAT_CHARS: a literal the rule may refuse for its length.
_LONG_NUMBER = re.compile(rf"[-+.eE0-9]{{{MAX_FLOAT_CHARS + 1}}}")
# orjson reads an integer literal beyond 64 bits as a float: such floats are checked by the reference parser.
_BIG_FLOAT = float(2**63)


class _Rejected:
    """Stands in for a number the rule refused; found (with its path) by the walk after parsing."""

    __slots__ = ("code", "reason")

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


def loads(text: str) -> Any:
    """Parse ``text`` under the rule and return the decoded value.

    Raises ValidationError: ``invalid_text`` (lone surrogate anywhere, keys included),
    ``invalid_number`` (integer beyond ±(2**53−1), non-finite or over-long number), ``nesting_too_deep``
    (more than :data:`MAX_DEPTH` levels), ``invalid_json`` (not JSON). Errors carry ``field`` (dotted path) and,
    when the message's ``id`` is itself acceptable, ``context["request_id"]``.

    The common case is parsed by orjson (about 8x faster than :mod:`json` with the number hooks); any frame it
    refuses, or that could break a rule orjson does not check (surrogate escapes, deep nesting, long number
    literals, integers beyond the safe range or beyond 64 bits), goes through the reference parser below, so
    the result and every error are those of :func:`json.loads` under the rule.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:  # not JSON, NaN/Infinity, lone surrogates, too deep: the reference decides
        return _loads_reference(text)
    if (("\\u" in text and _SURROGATE_ESCAPE.search(text) is not None)
            or text.count("[") + text.count("{") > MAX_DEPTH):
        return _loads_reference(text)
    numbers = _numbers(data)
    # Only a float literal can be refused for its length alone (an integer of more than MAX_INT_DIGITS digits is
    # beyond MAX_INT and already refused by value), so the text is scanned for long literals only when the
    # message holds a float: a run of digits inside a string is no number and changes nothing.
    if numbers is _UNSAFE or (numbers is _FLOATS and _LONG_NUMBER.search(text) is not None):
        return _loads_reference(text)
    return data


_PLAIN, _FLOATS, _UNSAFE = "plain", "floats", "unsafe"


def _numbers(data: Any) -> str:
    """``_UNSAFE``: an integer beyond ±MAX_INT or a float that may stand for an integer literal beyond 64 bits;
    else ``_FLOATS`` when the value holds any float, ``_PLAIN`` when it holds none."""
    if type(data) is dict:  # the common message first: an object of strings (a relayed signal, a chat line)
        for value in data.values():
            if type(value) is not str:
                break
        else:
            return _PLAIN
    stack = [data]
    floats = False
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif kind is int:
            if not -MAX_INT <= value <= MAX_INT:
                return _UNSAFE
        elif kind is float:
            if not -_BIG_FLOAT < value < _BIG_FLOAT:
                return _UNSAFE
            floats = True
    return _FLOATS if floats else _PLAIN


def _loads_reference(text: str) -> Any:
    """:func:`loads` with :func:`json.loads`, number hooks and the walk: the rule's reference implementation."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a str from an in-process caller may hold raw surrogates
        raise ValidationError(f"message is not valid Unicode (lone surrogate at character {exc.start})",
                              code="invalid_text") from None
    rejected: list[_Rejected] = []

    def parse_int(digits: str) -> int | _Rejected:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            marker = _Rejected("invalid_number", f"integer of {len(digits.lstrip('-'))} digits "
                                                 f"(at most ±{MAX_INT})")
            rejected.append(marker)
            return marker
        value = int(digits)
        if abs(value) > MAX_INT:
            marker = _Rejected("invalid_number", f"integer out of range (at most ±{MAX_INT})")
            rejected.append(marker)
            return marker
        return value

    def parse_float(literal: str) -> float | _Rejected:
        value = float(literal) if len(literal) <= MAX_FLOAT_CHARS else math.inf
        if not math.isfinite(value):
            marker = _Rejected("invalid_number", f"number {literal[:24]}{'…' if len(literal) > 24 else ''} "
                                                 "is out of range or too long")
            rejected.append(marker)
            return marker
        return value

    def parse_constant(name: str) -> _Rejected:
        marker = _Rejected("invalid_number", f"{name} is not a JSON number")
        rejected.append(marker)
        return marker

    try:
        data = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except RecursionError as exc:
        raise ValidationError(f"message nests deeper than {MAX_DEPTH} levels", code="nesting_too_deep") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not JSON: {exc.msg} at character {exc.pos}", code="invalid_json") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if rejected or surrogates or text.count("[") + text.count("{") > MAX_DEPTH:
        problem = _first_problem(data, surrogates)
        if problem is not None:
            path, code, reason = problem
            context: dict[str, Any] = {}
            if path and path[0] != "id" and isinstance(data, dict):
                rid = data.get("id")
                if isinstance(rid, str | int) and not isinstance(rid, bool) and _safe(rid):
                    context["request_id"] = rid
            field = ".".join(str(p) for p in path)[:MAX_FIELD_CHARS] or None
            where = f"{field}: " if field else ""
            raise ValidationError(f"{where}{reason}", code=code, field=field, context=context)
    return data


def _safe(value: str | int) -> bool:
    if isinstance(value, int):
        return abs(value) <= MAX_INT
    return not _lone_surrogate(value)


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _first_problem(data: Any, surrogates: bool) -> tuple[tuple[str | int, ...], str, str] | None:
    """Depth-first (iterative: the walk itself must not recurse) search for the first rule violation."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(data, (), 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return path, "nesting_too_deep", f"nests deeper than {MAX_DEPTH} levels"
            if isinstance(value, dict):
                items = list(value.items())
                for key, _ in items:
                    if surrogates and _lone_surrogate(key):
                        return (*path, key.encode("utf-8", "backslashreplace").decode()), "invalid_text", \
                            "field name is not valid Unicode (lone surrogate)"
                stack.extend((v, (*path, k), depth + 1) for k, v in reversed(items))
            else:
                stack.extend((v, (*path, i), depth + 1) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, _Rejected):
            return path, value.code, value.reason
        elif surrogates and isinstance(value, str) and _lone_surrogate(value):
            return path, "invalid_text", "text is not valid Unicode (lone surrogate)"
    return None


def sendable(text: str) -> str:
    """``text`` if a UTF-8 text frame can carry it, else a copy with each lone surrogate replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def dumps(message: Any) -> str:
    """Compact JSON that is always sendable (see :func:`sendable`); non-finite floats become ``null``.

    orjson writes it (compact, UTF-8, NaN/Infinity as ``null``); what orjson refuses (lone surrogates, keys that
    are not strings, integers beyond 64 bits, types it does not know) is written by :mod:`json` as before."""
    try:
        return orjson.dumps(message).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN/Infinity from some computation: JSON has no spelling for them
        text = json.dumps(_finite(message), separators=(",", ":"), ensure_ascii=False)
    return sendable(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
