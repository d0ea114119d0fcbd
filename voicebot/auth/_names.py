"""Names: the case-insensitive key, the look-alike skeleton, reserved names, and text safety for names and chat.

- :func:`name_key` is the store's unique key and the login throttle's counter key (unchanged, so stored
  registrations keep their keys).
- :func:`name_skeleton` is what two names *look like*: NFKC, then every character replaced by the prototype
  of its confusable set (Unicode's confusables data, shipped in the ``confusable-homoglyphs`` wheel), case
  folded, small capitals and other scripts' digits folded too. ``аlice3`` (Cyrillic а), ``ａｌｉｃｅ３``, ``alıce3``,
  ``alice³``, ``ᴀlice3``, ``alice٣`` and ``AIice3`` (capital I) all have the skeleton of ``alice3``.
- :func:`unsafe_char` finds control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
  characters, which names refuse; :func:`strip_unsafe` removes them from free text (chat).
"""

from __future__ import annotations

import functools
import json
import unicodedata
from importlib import resources
from typing import Any

__all__ = [
    "RESERVED_NAMES",
    "name_key",
    "name_skeleton",
    "name_skeletons",
    "normalize_name",
    "strip_unsafe",
    "unsafe_char",
]

#: Names nobody may take as a user (compared by skeleton), besides the names of the bots workers offer.
RESERVED_NAMES = frozenset({
    "admin", "administrator", "root", "system", "sysadmin", "voicebot", "server", "moderator", "mod", "operator",
    "support", "staff", "official", "security", "bot",
})

# Categories never allowed in names and removed from chat: controls, format characters (bidi embeddings and
# overrides, isolates, zero-width space/joiners, BOM, soft hyphen), surrogates, private use, unassigned.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Kept in chat: newline and tab, and the joiners emoji sequences and some scripts need.
_CHAT_KEEP = frozenset({"\n", "\t", "\u200c", "\u200d"})


def name_key(name: str) -> str:
    """The case-insensitive identity of a display name: ``name.strip().casefold()``.

    Registered names are unique on this key, and throttle counters are kept per key, so ``"Alice "``
    and ``"ALICE"`` are the same account for both.
    """
    return name.strip().casefold()


def normalize_name(name: str) -> str:
    """NFKC form of a trimmed name (``ａｌｉｃｅ³`` → ``alice3``): what the hub stores and shows."""
    return unicodedata.normalize("NFKC", name).strip()


def unsafe_char(text: str) -> str | None:
    """The first control/format/surrogate/private/unassigned/line-separator character in ``text``, or None."""
    return next((c for c in text if unicodedata.category(c) in _UNSAFE_CATEGORIES), None)


def strip_unsafe(text: str) -> str:
    """``text`` without the characters :func:`unsafe_char` finds (newline, tab, ZWNJ and ZWJ are kept)."""
    if unsafe_char(text) is None:
        return text
    return "".join(c for c in text if c in _CHAT_KEEP or unicodedata.category(c) not in _UNSAFE_CATEGORIES)


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each character whose confusable set's representative is another character → that representative.

    Built once from Unicode's confusables data: the member of ``[char, *look-alikes]`` with the most look-alikes
    (Unicode's prototype, e.g. ``l`` for ``I``, ``1`` and ``|``), ties to the smallest code point. Only the
    look-alike characters are read from the data (not their names), and only the result is kept: ~6,000 pairs
    instead of the whole table (a server's idle memory is mostly what it keeps)."""

    def entry(pairs: list[tuple[str, Any]]) -> Any:
        if len(pairs) <= 2 and pairs[0][0] == "c":  # {"c": look-alike, "n": its Unicode name}
            return pairs[0][1]
        return dict(pairs)

    data = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    table: dict[str, list[str]] = json.loads(data, object_pairs_hook=entry)
    out: dict[str, str] = {}
    for char, alikes in table.items():
        best = max([char, *alikes], key=lambda c: (len(table.get(c, ())), -ord(c[0]) if c else 0))
        if best != char:
            out[char] = best
    return out


def _prototype(char: str) -> str:
    """The representative of ``char``'s confusable set (see :func:`_prototypes`)."""
    return _prototypes().get(char, char)


def _fold(char: str) -> str:
    if char.isdigit() and not char.isascii():
        try:
            return str(unicodedata.digit(char))
        except ValueError:
            return char
    name = unicodedata.name(char, "")
    if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name) == len("LATIN LETTER SMALL CAPITAL X"):
        return name[-1].lower()
    return char


def _skeleton(text: str) -> str:
    for _ in range(2):  # a prototype can itself be NFKC-decomposable or have a prototype of its own
        text = unicodedata.normalize("NFKC", "".join(_prototype(_fold(c)) for c in text))
    return text.casefold()


def name_skeleton(name: str) -> str:
    """What ``name`` looks like, case-insensitively (see the module docs): the skeleton of its case-folded form."""
    return _skeleton(unicodedata.normalize("NFKC", name).strip().casefold())


def name_skeletons(name: str) -> frozenset[str]:
    """Both skeletons of ``name``: of its case-folded form and, case-folded, of the name as written (upper-case
    ``I`` looks like ``l`` but folds to ``i``). Two names are confusable when their sets intersect."""
    text = unicodedata.normalize("NFKC", name).strip()
    return frozenset({_skeleton(text.casefold()), _skeleton(text)})
