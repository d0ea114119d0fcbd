"""The offline responder: deterministic, useful answers for a voice demo."""

from __future__ import annotations

from datetime import datetime

import pytest
import trio

from voicebot.providers import Conversation, Responder
from voicebot.providers._arith import evaluate, find_expression, parse_number_words

CLOCK = datetime(2026, 11, 30, 15, 5)


def chat(*exchanges: tuple[str, str], persona: str | None = None) -> list[str]:
    brain = Responder(clock=lambda: CLOCK)
    conversation = Conversation(persona)
    answers = []
    for name, text in exchanges:
        conversation.add_user(name, text)
        answer = brain.answer(conversation.messages())
        conversation.add_assistant(answer)
        answers.append(answer)
    return answers


@pytest.mark.parametrize(("question", "expected"), [
    ("What is twelve times seven?", "That's 84."),
    ("what's 3 + 4 * 2", "That's 11."),
    ("one hundred and five minus six", "That's 99."),
    ("What is two thousand three hundred divided by four", "That's 575."),
    ("what is the square root of eighty one", "That's 9."),
    ("nine squared plus one", "That's 82."),
    ("two point five times four", "That's 10."),
    ("ten divided by zero", "Sorry, you can't divide by zero."),
    ("What time is it?", "It's 3:05 PM."),
    ("what's the date today", "Today is Monday, 30 November 2026."),
    ("Hello!", "Hello, alice! I'm Vee. What can I do for you?"),
    ("What is your name?", "I'm Vee, a voice assistant. Nice to meet you!"),
    ("what's my name", "You're alice."),
    ("How are you?", "I'm doing well, thanks for asking, alice! How can I help?"),
    ("thank you", "You're welcome!"),
])
def test_single_answers(question: str, expected: str) -> None:
    assert chat(("alice", question)) == [expected]


def test_name_comes_from_the_persona() -> None:
    assert chat(("bob", "who are you"), persona="Your name is Captain Max.")[0].startswith("I'm Captain")
    assert chat(("bob", "who are you"), persona="Speak like a pirate.")[0].startswith("I'm your assistant")


def test_remembers_facts_per_speaker() -> None:
    answers = chat(
        ("alice", "My favourite colour is blue."),
        ("bob", "my favorite color is green"),
        ("alice", "what is my favourite colour?"),
        ("bob", "What's my favourite colour"),
        ("carol", "what is my favourite colour"),
        ("alice", "call me Ally"),
        ("alice", "what is my name"),
    )
    assert answers[0] == "Got it: your favourite colour is blue. I'll remember that."
    assert answers[2] == "Your favourite colour is blue."
    assert answers[3] == "Your favorite color is green."
    assert answers[4] == "You haven't told me your favourite colour yet."
    assert answers[6] == "You're Ally."


def test_remembers_places() -> None:
    answers = chat(("alice", "I live in Berlin."), ("alice", "I work at the bakery"), ("alice", "where do I live?"),
                   ("alice", "Where do I work"), ("bob", "where do I live"))
    assert answers[0] == "Got it: you live in Berlin."
    assert answers[2:] == ["You live in Berlin.", "You work at the bakery.", "You haven't told me where you live yet."]


def test_honest_fallback() -> None:
    assert "can't answer" in chat(("alice", "What is the capital of Peru?"))[0]


def test_number_words() -> None:
    assert parse_number_words(["one", "million", "two", "hundred", "thousand"]) == 1_200_000
    assert parse_number_words(["ninety", "nine"]) == 99
    assert parse_number_words(["banana"]) is None
    assert find_expression("I have 2 cats and 3 dogs") is None
    expression = find_expression("what is 7 minus 2 minus 1")
    assert expression is not None and evaluate(expression) == 4


async def test_streams_in_pieces(autojump_clock: trio.testing.MockClock) -> None:
    brain = Responder(clock=lambda: CLOCK, piece_delay=0.05)
    conversation = Conversation()
    conversation.add_user("alice", "what is twelve times seven")
    async with brain.stream(conversation.messages()) as deltas:
        pieces = [piece async for piece in deltas]
    assert len(pieces) == 2 and "".join(pieces) == "That's 84."
