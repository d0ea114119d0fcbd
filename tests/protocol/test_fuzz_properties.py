"""Issue 12 item 6a: any bytes, any text and any JSON value through decode + validate give a request or a
:class:`ValidationError` — never another exception — for every request type, worker protocol included."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot import protocol
from voicebot.errors import ValidationError
from voicebot.testing._corpus import VALID_MESSAGES, all_request_models

MODELS = all_request_models()
TYPES = sorted(MODELS)
CODES = {"invalid_json", "invalid_message", "unknown_type", "invalid_text", "invalid_number", "nesting_too_deep"}

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text including lone surrogates (hypothesis' default alphabet excludes them).
texts = st.text(st.characters(codec=None, categories=None), max_size=40) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
numbers = (st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True))
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(texts, inner, max_size=4), max_leaves=30)


def check(frame: str | bytes) -> None:
    error: ValidationError | None = None
    try:
        request = protocol.validate(protocol.decode(frame))
    except ValidationError as exc:
        error = exc
    if error is None:
        assert request.TYPE in MODELS
        return
    assert error.code in CODES, error.code
    if error.field is not None:
        error.field.encode("utf-8")  # the error itself is always sendable
    error.message.encode("utf-8")


def dump(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes(frame: bytes) -> None:
    check(frame)
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        return
    check(text)


@SETTINGS
@given(st.text(max_size=200) | texts)
def test_any_text(frame: str) -> None:
    check(frame)


@SETTINGS
@given(json_values)
def test_any_json_value(value: Any) -> None:
    check(dump(value))


@SETTINGS
@given(st.sampled_from(TYPES), st.dictionaries(texts, json_values, max_size=6), st.data())
def test_any_fields_for_every_type(mtype: str, fields: dict[str, Any], data: st.DataObject) -> None:
    base = dict(data.draw(st.sampled_from(VALID_MESSAGES[mtype])))
    base.update(fields)
    base["type"] = mtype
    check(dump(base))


@SETTINGS
@given(st.sampled_from(TYPES), st.data())
def test_each_field_of_every_type_retyped(mtype: str, data: st.DataObject) -> None:
    message = dict(data.draw(st.sampled_from(VALID_MESSAGES[mtype])))
    for key in [k for k in message if k != "type"]:
        if data.draw(st.booleans()):
            message[key] = data.draw(json_values)
        elif data.draw(st.booleans()):
            del message[key]
    check(dump(message))
