"""Conversation context: persona, attribution, the budget rule (whole turns, oldest first), persistence."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicebot.providers import DEFAULT_PERSONA, MAX_PERSONA_CHARS, ChatMessage, Conversation


def test_default_persona_and_attribution() -> None:
    conversation = Conversation()
    conversation.add_user("alice", "Hi there")
    conversation.add_assistant("Hello alice.")
    conversation.add_user("bob", "And me?")
    assert conversation.messages() == [
        ChatMessage(role="system", content=DEFAULT_PERSONA),
        ChatMessage(role="user", content="Hi there", name="alice"),
        ChatMessage(role="assistant", content="Hello alice."),
        ChatMessage(role="user", content="And me?", name="bob"),
    ]


def test_persona_limit_and_blank_text() -> None:
    assert Conversation("x" * MAX_PERSONA_CHARS).persona == "x" * MAX_PERSONA_CHARS
    with pytest.raises(ValueError, match="4000"):
        Conversation("x" * (MAX_PERSONA_CHARS + 1))
    conversation = Conversation("  ")
    assert conversation.persona == DEFAULT_PERSONA
    assert conversation.add_user("alice", "   ") is None
    assert conversation.add_assistant("") is None
    assert conversation.turns == []


def test_budget_drops_whole_oldest_turns_and_keeps_the_persona() -> None:
    conversation = Conversation("You are Max.", budget=60)
    conversation.add_user("al", "a" * 20)        # 24
    conversation.add_assistant("b" * 20)         # 20
    conversation.add_user("al", "c" * 20)        # 24
    conversation.add_assistant("d" * 10)         # 10
    messages = conversation.messages()
    assert messages[0] == ChatMessage(role="system", content="You are Max.")
    assert [m.content for m in messages[1:]] == ["b" * 20, "c" * 20, "d" * 10]  # 54 <= 60; adding 24 would not fit
    assert len(conversation.turns) == 4  # dropped from the context, not from the record


def test_newest_turn_is_kept_even_over_budget() -> None:
    conversation = Conversation(budget=10)
    conversation.add_user("al", "short")
    conversation.add_user("al", "a much longer message than the budget allows")
    assert [m.content for m in conversation.messages()[1:]] == ["a much longer message than the budget allows"]


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(min_size=1, max_size=80)), max_size=30),
       st.integers(min_value=1, max_value=300))
def test_budget_rule_properties(turns: list[tuple[str, str]], budget: int) -> None:
    conversation = Conversation(budget=budget)
    for role, text in turns:
        if role == "user":
            conversation.add_user("someone", text)
        else:
            conversation.add_assistant(text)
    window = conversation.window()
    recorded = conversation.turns
    assert window == recorded[len(recorded) - len(window):]  # a suffix: newest whole turns, in order
    if recorded:
        assert window  # the newest turn always goes
        assert sum(t.size() for t in window) <= budget or len(window) == 1
        if len(window) < len(recorded):  # the next older turn would not have fitted
            assert sum(t.size() for t in window) + recorded[-len(window) - 1].size() > budget
    assert conversation.messages()[0].role == "system"


def test_round_trip_through_json() -> None:
    conversation = Conversation("You are Max, a pirate.", budget=500)
    conversation.add_user("alice", "My favourite colour is blue")
    conversation.add_assistant("Got it.")
    restored = Conversation.from_dict(json.loads(json.dumps(conversation.to_dict())))
    assert restored.messages() == conversation.messages()
    assert restored.budget == 500 and restored.persona == "You are Max, a pirate."
    with pytest.raises(ValueError, match="malformed"):
        Conversation.from_dict({"turns": [{"role": "system", "text": "x"}]})
