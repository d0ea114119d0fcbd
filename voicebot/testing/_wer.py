"""Word error rate for speech tests and benchmarks (Levenshtein distance over normalised words)."""

from __future__ import annotations

import re

from voicebot.providers._arith import parse_number_words

__all__ = ["SPEECH_SENTENCES", "normalise_words", "word_error_rate"]

SPEECH_SENTENCES = (
    "What is twelve times seven?",
    "My favourite colour is blue.",
    "Please tell me the time and the date.",
    "The quick brown fox jumps over the lazy dog.",
    "Can you remind me to call my sister tomorrow?",
    "I would like a cup of coffee with milk.",
    "How far is it from London to Paris by train?",
    "The weather today is sunny with a light breeze.",
    "Turn off the lights in the kitchen, please.",
    "We are meeting at half past three in the office.",
    "My name is Alice and I live in Berlin.",
    "Thank you very much for your help today.",
)
"""Everyday sentences (questions the assistant answers, numbers, names, places) that the speech benchmarks
synthesise and transcribe to measure word error rate."""

_NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                 "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
                 "thousand", "million"}


def normalise_words(text: str) -> list[str]:
    """Lower case, punctuation dropped, British → American spelling of colour/favourite, number words → digits
    ("twelve" = "12")."""
    text = text.lower().replace("-", " ").replace("colour", "color").replace("favourite", "favorite")
    words = re.findall(r"[a-z0-9']+", text)
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in _NUMBER_WORDS:
            j = i
            while j < len(words) and (words[j] in _NUMBER_WORDS or (words[j] == "and" and j > i)):
                j += 1
            while words[j - 1] == "and":
                j -= 1
            value = parse_number_words(words[i:j])
            if value is not None:
                out.append(str(int(value)) if value.is_integer() else str(value))
                i = j
                continue
        out.append(words[i].strip("'"))
        i += 1
    return [w for w in out if w]


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(errors, reference words)``: substitutions + deletions + insertions by edit distance.
    Sum both over a corpus and divide for the corpus WER."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1], len(ref)
