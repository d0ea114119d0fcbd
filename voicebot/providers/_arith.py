"""Arithmetic said aloud: "what is twelve times seven", "3 plus 4 divided by 2", "one hundred and five minus 6".

Numbers may be digits or English number words (up to the millions, "point five", "a half" not included);
operators are ``plus``/``minus``/``times``/``multiplied by``/``divided by``/``over`` and the symbols
``+ - * x × / ÷``, plus ``squared`` and ``square root of``. Usual precedence (× and ÷ before + and −).
Pure functions, no ``eval``.
"""

from __future__ import annotations

import math
import re

__all__ = ["ArithmeticError_", "evaluate", "find_expression", "format_number", "parse_number_words"]

_UNIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_UNITS = {w: i for i, w in enumerate(_UNIT_WORDS)}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"))}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_OPS = {"plus": "+", "add": "+", "minus": "-", "subtract": "-", "times": "*", "multiplied": "*", "x": "*",
        "divided": "/", "over": "/", "+": "+", "-": "-", "*": "*", "×": "*", "/": "/", "÷": "/"}
_FILLER = {"by", "and", "a"}


class ArithmeticError_(ValueError):
    """The expression cannot be computed (division by zero, root of a negative)."""


def parse_number_words(words: list[str]) -> float | None:
    """``["one", "hundred", "and", "five"]`` → 105; digits ("42", "3.5") too; None if not a number."""
    if len(words) == 1:
        try:
            return float(words[0].replace(",", ""))
        except ValueError:
            pass
    total, current, seen = 0, 0, False
    fraction: list[int] | None = None
    for word in words:
        if fraction is not None:
            if word not in _UNITS or _UNITS[word] > 9:
                return None
            fraction.append(_UNITS[word])
        elif word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in ("thousand", "million"):
            total += (current or 1) * _SCALES[word]
            current = 0
        elif word == "and" and seen:
            continue
        elif word == "point" and seen:
            fraction = []
            continue
        else:
            return None
        seen = True
    if not seen:
        return None
    value = float(total + current)
    if fraction:
        value += float("0." + "".join(str(d) for d in fraction))
    return value


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("square root of", " sqrt ").replace("what's", "what is")
    text = re.sub(r"(?<=\d)\s*([x×*/÷+])\s*(?=\d)", r" \1 ", text)
    text = re.sub(r"(?<=\d)\s*-\s*(?=\d)", " - ", text)
    return re.findall(r"\d+(?:[.,]\d+)*|sqrt|[a-z]+|[+*/×÷-]", text)


def _is_number_word(word: str) -> bool:
    return word in _UNITS or word in _TENS or word in _SCALES or word in ("and", "point") or bool(
        re.fullmatch(r"\d+(?:[.,]\d+)*", word))


def find_expression(text: str) -> list[float | str] | None:
    """The arithmetic in ``text`` as alternating numbers and operators (``sqrt``/``sq`` unary), or None."""
    words = _tokens(text)
    out: list[float | str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "sqrt":
            out.append("sqrt")
            i += 1
            continue
        if _is_number_word(word) and word not in ("and", "point"):
            j = i
            while j < len(words) and _is_number_word(words[j]):
                j += 1
            while j > i and words[j - 1] in ("and", "point"):
                j -= 1
            value = parse_number_words(words[i:j])
            if value is None:
                return None
            out.append(value)
            i = j
            continue
        if word == "squared" and out and isinstance(out[-1], float):
            out.append("sq")
        elif word in _OPS and out and (isinstance(out[-1], float) or out[-1] == "sq"):
            out.append(_OPS[word])
        elif word in _FILLER or not out:
            pass
        elif word in ("is", "equals", "equal", "make", "makes"):
            break
        i += 1
    numbers = [item for item in out if isinstance(item, float)]
    operators = [item for item in out if isinstance(item, str)]
    if not numbers or not operators:
        return None
    while out and isinstance(out[-1], str) and out[-1] not in ("sq",):
        out.pop()
    return out or None


def evaluate(expression: list[float | str]) -> float:
    """Compute :func:`find_expression`'s output with the usual precedence."""
    values: list[float | str] = []
    i = 0
    while i < len(expression):  # unary operators first
        item = expression[i]
        if item == "sqrt":
            operand = expression[i + 1] if i + 1 < len(expression) else None
            if not isinstance(operand, float):
                raise ArithmeticError_("square root of what?")
            if operand < 0:
                raise ArithmeticError_("negative numbers have no real square root")
            values.append(math.sqrt(operand))
            i += 2
            continue
        if item == "sq":
            last = values.pop()
            assert isinstance(last, float)
            values.append(last * last)
        else:
            values.append(item)
        i += 1
    if not values or not isinstance(values[0], float):
        raise ArithmeticError_("I could not follow that calculation")
    terms: list[float] = [values[0]]
    signs: list[str] = []
    for op, operand in zip(values[1::2], values[2::2], strict=False):
        if not isinstance(operand, float) or not isinstance(op, str):
            raise ArithmeticError_("I could not follow that calculation")
        if op == "*":
            terms[-1] *= operand
        elif op == "/":
            if operand == 0:
                raise ArithmeticError_("you can't divide by zero")
            terms[-1] /= operand
        else:
            signs.append(op)
            terms.append(operand)
    result = terms[0]
    for sign, term in zip(signs, terms[1:], strict=True):
        result = result + term if sign == "+" else result - term
    return result


def format_number(value: float) -> str:
    """A value the way a voice says it: integers without ``.0``, others to at most 3 decimals."""
    if math.isclose(value, round(value), abs_tol=1e-9):
        return str(round(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")
