"""The ``responder`` LLM provider (the default ``local`` brain): deterministic, offline, genuinely useful.

No language model runs offline from a wheel on this platform (README "AI providers"), so the default brain is a
rule-based responder over the conversation it is given. It answers greetings, its own name (taken from the
persona: "You are Vee…" / "Your name is …"), the speaker's name, the time and date (injected clock), spoken
arithmetic, small talk, and remembers facts said earlier in the conversation ("my favourite colour is blue" →
"what is my favourite colour?", "I live in Berlin" → "where do I live?"), per speaker. Its memory is the
context it receives, so it forgets what the context budget dropped — like any LLM. Anything else gets an honest
fallback. Answers are one or two short sentences (voice), streamed word by word.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import trio

from ._api import ChatMessage
from ._arith import ArithmeticError_, evaluate, find_expression, format_number

__all__ = ["Responder", "persona_name"]

_NAME_IN_PERSONA = re.compile(
    r"\b(?i:you are|you're|your name is|you are called|call yourself)\s+(?i:called\s+)?([A-Z][\w'-]{0,30})")
_FACT = re.compile(r"\bmy ([a-z][a-z ']{1,40}?) (?:is|are) ([^.?!,;]{1,80})", re.IGNORECASE)
_ASK_FACT = re.compile(r"\b(?:what|who|where|which|when)(?: is|'s| are) my ([a-z][a-z ']{1,40}?)\s*[?.!]*$",
                       re.IGNORECASE)
_PLACE = re.compile(r"\bi (live|work|study) (in|at|for) ([^.?!,;]{1,60})", re.IGNORECASE)
_ASK_PLACE = re.compile(r"\bwhere do i (live|work|study)\b|\bwho do i work for\b", re.IGNORECASE)
_CALL_ME = re.compile(r"\b(?:call me|my name is|i'm called|i am called)\s+([A-Za-z][\w'-]{0,30})", re.IGNORECASE)
_GREETING = re.compile(r"^(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening)|greetings)\b", re.IGNORECASE)


def persona_name(persona: str) -> str | None:
    """The assistant's name as the persona states it, if it does."""
    found = _NAME_IN_PERSONA.search(persona)
    return found.group(1) if found else None


def _clean(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


class Responder:
    """The deterministic conversational responder (see the module docs). Same input ⇒ same answer."""

    name = "responder"

    def __init__(self, clock: Callable[[], datetime] | None = None, *, piece_delay: float = 0.0) -> None:
        """``clock`` gives the local time (default: the system's, with its time zone); ``piece_delay`` seconds
        between streamed words (0: only a checkpoint)."""
        self.clock = clock or (lambda: datetime.now().astimezone())
        self.piece_delay = piece_delay
        self._raw = ""

    @asynccontextmanager
    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[AsyncIterator[str], None]:
        """The answer to the last user message, streamed word by word."""
        answer = self.answer(messages)

        async def pieces() -> AsyncIterator[str]:
            words = answer.split(" ")
            for index, word in enumerate(words):
                await trio.sleep(self.piece_delay)
                yield word if index == 0 else " " + word

        yield pieces()

    def answer(self, messages: Sequence[ChatMessage]) -> str:
        """The full answer (what :meth:`stream` streams)."""
        persona = next((m.content for m in messages if m.role == "system"), "")
        me = persona_name(persona) or "your assistant"
        users = [m for m in messages if m.role == "user"]
        if not users:
            return f"Hello! I'm {me}. How can I help?"
        last = users[-1]
        speaker = last.name
        earlier = [m for m in users[:-1] if m.name == speaker]
        text = _clean(last.content)
        self._raw = " ".join(last.content.split())  # original case, for values quoted back (names, places)
        for rule in (self._arithmetic, self._time, self._names, self._recall, self._places, self._remember,
                     self._small_talk):
            reply = rule(text, speaker, earlier, me)
            if reply:
                return reply
        return ("I'm a simple offline assistant, so I can't answer that one. I can tell you the time or date, "
                "do arithmetic, and remember what you tell me.")

    # -- rules (each returns None when it does not apply) ------------------------------------------------------

    def _arithmetic(self, text: str, *_: object) -> str | None:
        expression = find_expression(text)
        if expression is None:
            return None
        try:
            value = evaluate(expression)
        except ArithmeticError_ as exc:
            return f"Sorry, {exc}."
        return f"That's {format_number(value)}."

    def _time(self, text: str, *_: object) -> str | None:
        now = self.clock()
        if re.search(r"\bwhat(?: is|'s)? the time\b|\bwhat time is it\b|\btell me the time\b|\bcurrent time\b", text):
            return f"It's {now.strftime('%I:%M %p').lstrip('0')}."
        if re.search(r"\bwhat(?: is|'s)? (?:the date|today's date)\b|\bwhat day is (?:it|today)\b|"
                     r"\bwhich day is it\b|\bwhat is today\b|\bthe date today\b", text):
            return f"Today is {now.strftime('%A')}, {now.day} {now.strftime('%B %Y')}."
        if re.search(r"\bwhat year is it\b", text):
            return f"It's {now.year}."
        return None

    def _names(self, text: str, speaker: str | None, earlier: list[ChatMessage], me: str) -> str | None:
        if re.search(r"\b(?:what(?: is|'s) your name|who are you|what are you called|your name\b)", text):
            return f"I'm {me}, a voice assistant. Nice to meet you!"
        if re.search(r"\b(?:what(?: is|'s) my name|who am i|do you know my name)\b", text):
            told = None
            for message in earlier:
                found = _CALL_ME.search(message.content)
                if found:
                    told = found.group(1)
            name = told or speaker
            return f"You're {name.capitalize() if told else name}." if name else "I don't know your name yet."
        found = _CALL_ME.search(text)
        if found:
            return f"Nice to meet you, {found.group(1).capitalize()}! I'm {me}."
        return None

    def _recall(self, text: str, speaker: str | None, earlier: list[ChatMessage], _me: str) -> str | None:
        asked = _ASK_FACT.search(text)
        if not asked:
            return None
        key = _normalise_key(asked.group(1))
        if key == "name":
            return None
        for message in reversed(earlier):
            for found in _FACT.finditer(message.content):
                if _normalise_key(found.group(1)) == key:
                    return f"Your {found.group(1).strip().lower()} is {found.group(2).strip()}."
        return f"You haven't told me your {asked.group(1)} yet."

    def _places(self, text: str, speaker: str | None, earlier: list[ChatMessage], _me: str) -> str | None:
        asked = _ASK_PLACE.search(text)
        if asked:
            verb = asked.group(1) or "work"
            for message in reversed(earlier):
                for said in _PLACE.finditer(message.content):
                    if said.group(1).lower() == verb:
                        return f"You {verb} {said.group(2).lower()} {said.group(3).strip()}."
            return f"You haven't told me where you {verb} yet."
        told = _PLACE.search(self._raw)
        if told:
            return f"Got it: you {told.group(1).lower()} {told.group(2).lower()} {told.group(3).strip()}."
        return None

    def _remember(self, text: str, *_: object) -> str | None:
        found = _FACT.search(self._raw)
        if not found or found.group(1).strip().lower() == "name":
            return None
        return f"Got it: your {found.group(1).strip().lower()} is {found.group(2).strip()}. I'll remember that."

    def _small_talk(self, text: str, speaker: str | None, _earlier: object, me: str) -> str | None:
        who = f", {speaker}" if speaker else ""
        if re.search(r"\bhow are you\b|\bhow's it going\b|\bhow are things\b", text):
            return f"I'm doing well, thanks for asking{who}! How can I help?"
        if re.search(r"\b(?:thank you|thanks|cheers)\b", text):
            return "You're welcome!"
        if re.search(r"\b(?:bye|goodbye|see you|good night)\b", text):
            return f"Goodbye{who}! Talk to you soon."
        if re.search(r"\bwhat can you do\b|\bhelp me\b|\bwhat do you do\b", text):
            return ("I can tell you the time and date, do arithmetic like twelve times seven, and remember "
                    "things you tell me, like your favourite colour.")
        if re.search(r"\b(?:tell me a )?joke\b", text):
            return "Why did the computer go to the doctor? It had a virus."
        if _GREETING.search(text):
            return f"Hello{who}! I'm {me}. What can I do for you?"
        if re.search(r"\b(?:can you hear me|are you there|is this working)\b", text):
            return f"Yes, I can hear you{who}."
        return None


def _normalise_key(key: str) -> str:
    key = key.strip().lower().replace("favorite", "favourite").replace("color", "colour")
    return re.sub(r"\s+", " ", key)
