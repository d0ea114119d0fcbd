"""Text rules of the assistant: cutting the LLM's stream into sentences, and what part of a sentence was heard.

Sentence streaming: :class:`SentenceSplitter` gets the LLM's deltas as they arrive and hands out each sentence as
soon as its end is certain (``.``, ``!``, ``?`` or ``…`` followed by white space, or a newline), so the first
sentence is synthesised and played while the model still writes the rest. A sentence end needs the *next*
character (``"3.5"``, ``"e.g."`` inside a sentence, ``"Mr. Smith"`` are not ends); a first sentence that grows
past :data:`MAX_SENTENCE_CHARS` is cut at a comma or space so a model that writes no punctuation still speaks.
The *first* sentence of a reply is handed out clause by clause when it is long (a ``,``/``;``/``:`` followed by
white space after at least :data:`FIRST_CLAUSE_CHARS` characters, with at least as much text still to come in that
sentence): text-to-speech time grows with the text (piper: ~0.19 s for "I'm a simple offline assistant," vs
~0.31 s for the whole 58-character sentence on two idle cores), so the bot starts talking sooner; later sentences
stay whole because the first one's playback already hides their synthesis.

Barge-in: :func:`heard_part` maps the fraction of a sentence's samples that were played to the words that were
heard (words are spread over the audio in proportion to their length, spaces and punctuation included), and keeps
only *whole* words fully played — never a word that was cut, never text after it.
"""

from __future__ import annotations

import re

__all__ = ["FIRST_CLAUSE_CHARS", "MAX_SENTENCE_CHARS", "SentenceSplitter", "heard_part"]

MAX_SENTENCE_CHARS = 240
"""Longest text held back waiting for a sentence end before it is spoken anyway."""
FIRST_CLAUSE_CHARS = 20
"""Shortest first clause handed out on its own (and shortest rest of the first sentence that justifies it)."""
_CLAUSE = re.compile(r"[,;:](?=\s)")

_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|\n")
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "vs.", "etc.", "prof.", "jr.", "sr."})


class SentenceSplitter:
    """Incremental sentence splitter (see the module docs): ``feed(delta) -> [sentences]``, ``flush() -> rest``."""

    def __init__(self) -> None:
        self._buffer = ""
        self._first = True

    def feed(self, delta: str) -> list[str]:
        """Add ``delta``; return the sentences (or the first sentence's first clause) now complete (stripped,
        never empty)."""
        self._buffer += delta
        out: list[str] = self._first_clause() if self._first else []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end()
            words = self._buffer[start:end].split()
            if words and words[-1].lower() in _ABBREVIATIONS:
                continue
            sentence = self._buffer[start:end].strip()
            if sentence:
                out.append(sentence)
            start = end
        self._buffer = self._buffer[start:]
        if len(self._buffer) > MAX_SENTENCE_CHARS:
            cut = max(self._buffer.rfind(",", 0, MAX_SENTENCE_CHARS), self._buffer.rfind(" ", 0, MAX_SENTENCE_CHARS))
            cut = cut + 1 if cut > 0 else MAX_SENTENCE_CHARS
            head, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if head:
                out.append(head)
        if out:
            self._first = False
        return out

    def _first_clause(self) -> list[str]:
        """The first sentence's first clause, when it is long enough and enough of the sentence follows it."""
        end = next((m.start() for m in _END.finditer(self._buffer)
                    if (self._buffer[:m.end()].split() or [""])[-1].lower() not in _ABBREVIATIONS), None)
        if end is None:  # the sentence is still being written: only text after the clause is needed
            end = len(self._buffer) + FIRST_CLAUSE_CHARS
        for match in _CLAUSE.finditer(self._buffer, FIRST_CLAUSE_CHARS):
            if match.end() > MAX_SENTENCE_CHARS or end - match.end() < FIRST_CLAUSE_CHARS:
                break
            clause, self._buffer = self._buffer[:match.end()].strip(), self._buffer[match.end():]
            self._first = False
            return [clause] if clause else []
        return []

    def flush(self) -> str:
        """The unfinished rest (the LLM ended without a final punctuation mark), stripped."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest


def heard_part(sentence: str, fraction: float) -> str:
    """The whole words of ``sentence`` heard when ``fraction`` (0..1) of its audio was played (see module docs)."""
    if fraction >= 1.0:
        return sentence
    if fraction <= 0.0 or not sentence:
        return ""
    budget = fraction * len(sentence)
    heard = ""
    for match in re.finditer(r"\S+", sentence):
        if match.end() > budget:
            break
        heard = sentence[: match.end()]
    return heard
