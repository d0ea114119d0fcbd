"""A bot's conversation: persona, attributed turns, and a context budget.

Budget rule (documented in README "AI providers"): :meth:`Conversation.messages` always starts with the
persona (system message), then the *newest whole turns* whose text fits in ``budget`` characters (speaker
names included). Older turns are dropped whole, oldest first — a message is never cut in the middle — and
the newest turn is always kept even when it alone exceeds the budget (a single user turn is bounded by the
caption/STT limits anyway). Dropped turns stay in :attr:`Conversation.turns` up to :data:`MAX_KEPT_TURNS`, so
the context shown to the model shrinks without losing the record the bot keeps across restarts.

``add_assistant`` must be given only what was actually played to the users (barge-in keeps the played part):
the next LLM request then never claims words nobody heard.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ._api import ChatMessage

__all__ = ["DEFAULT_PERSONA", "MAX_KEPT_TURNS", "MAX_PERSONA_CHARS", "Conversation", "Turn"]

MAX_PERSONA_CHARS = 4000
"""Longest persona (system prompt) accepted."""

MAX_KEPT_TURNS = 200
"""Turns kept in memory and in :meth:`Conversation.to_dict` (oldest forgotten beyond)."""

DEFAULT_PERSONA = (
    "You are Vee, a friendly voice assistant in a group voice call. Several people may talk to you; each user "
    "message carries the speaker's name. Answer in one to three short spoken sentences, without lists, markdown "
    "or emoji. If you do not know something, say so honestly."
)
"""The persona used when ``bot.add`` gives none (its assistant is called Vee)."""


@attrs.frozen
class Turn:
    """One message of the conversation: who said what (``name`` is the speaker of a user turn)."""

    role: Literal["user", "assistant"]
    text: str
    name: str | None = None

    def size(self) -> int:
        """Characters this turn costs in the budget (speaker name included)."""
        return len(self.text) + (len(self.name) + 2 if self.name else 0)

    def message(self) -> ChatMessage:
        """As a chat message."""
        return ChatMessage(role=self.role, content=self.text, name=self.name)


class Conversation:
    """Persona + attributed turns + budget (see the module docs). Not thread-safe; one per bot."""

    def __init__(self, persona: str | None = None, *, budget: int = 6000) -> None:
        """``persona`` (≤ :data:`MAX_PERSONA_CHARS`, blank → :data:`DEFAULT_PERSONA`); ``budget`` in characters."""
        persona = (persona or "").strip() or DEFAULT_PERSONA
        if len(persona) > MAX_PERSONA_CHARS:
            raise ValueError(f"persona is longer than {MAX_PERSONA_CHARS} characters")
        if budget <= 0:
            raise ValueError("budget must be > 0")
        self.persona = persona
        self.budget = budget
        self.turns: list[Turn] = []

    def add_user(self, name: str, text: str) -> Turn | None:
        """Record what ``name`` said (``None`` and nothing recorded for blank text)."""
        text = " ".join(text.split())
        if not text:
            return None
        turn = Turn("user", text, name.strip() or "someone")
        self._append(turn)
        return turn

    def add_assistant(self, text_actually_played: str) -> Turn | None:
        """Record what the bot said — only what was played (``None`` for nothing played)."""
        text = " ".join(text_actually_played.split())
        if not text:
            return None
        turn = Turn("assistant", text)
        self._append(turn)
        return turn

    def _append(self, turn: Turn) -> None:
        self.turns.append(turn)
        if len(self.turns) > MAX_KEPT_TURNS:
            del self.turns[: len(self.turns) - MAX_KEPT_TURNS]

    def window(self) -> list[Turn]:
        """The newest whole turns within the budget (at least the newest one), oldest first."""
        kept: list[Turn] = []
        used = 0
        for turn in reversed(self.turns):
            if kept and used + turn.size() > self.budget:
                break
            kept.append(turn)
            used += turn.size()
        kept.reverse()
        return kept

    def messages(self) -> list[ChatMessage]:
        """What to send to the LLM: the persona, then :meth:`window`."""
        return [ChatMessage(role="system", content=self.persona), *(turn.message() for turn in self.window())]

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict (survives a supervisor restart through whatever keeps it)."""
        return {"persona": self.persona, "budget": self.budget,
                "turns": [{"role": t.role, "text": t.text, "name": t.name} for t in self.turns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """Rebuild from :meth:`to_dict`'s output (``ValueError`` on malformed data)."""
        conversation = cls(str(data.get("persona") or ""), budget=int(data.get("budget", 6000)))
        for raw in data.get("turns", []):
            role, text, name = raw.get("role"), raw.get("text"), raw.get("name")
            if role not in ("user", "assistant") or not isinstance(text, str):
                raise ValueError(f"malformed conversation turn: {raw!r}")
            if role == "user":
                conversation.add_user(str(name or ""), text)
            else:
                conversation.add_assistant(text)
        return conversation
