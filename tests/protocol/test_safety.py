"""The text-safety rule holds for every field of every
message type at every depth (lone surrogates, huge/non-finite numbers, deep nesting), as a structured error."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot import protocol
from voicebot.errors import ValidationError
from voicebot.protocol._safety import MAX_DEPTH, MAX_INT, _loads_reference, dumps, loads, sendable
from voicebot.testing._corpus import VALID_MESSAGES, all_request_models

MODELS = all_request_models()
EXAMPLES = [(t, i, m) for t, ms in VALID_MESSAGES.items() for i, m in enumerate(ms)]
IDS = [f"{t}#{i}" for t, i, _ in EXAMPLES]

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every position in a message: each field, each nested field, each list item."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def replaced(message: dict[str, Any], path: Path, new: Any) -> dict[str, Any]:
    out = copy.deepcopy(message)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return out


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def decode_error(text: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        protocol.validate(protocol.decode(text, MODELS), MODELS)
    return info.value


def test_every_registered_type_has_an_example() -> None:
    assert set(MODELS) <= set(VALID_MESSAGES)


@pytest.mark.parametrize(("mtype", "index", "message"), EXAMPLES, ids=IDS)
def test_examples_are_valid(mtype: str, index: int, message: dict[str, Any]) -> None:
    request = protocol.validate(protocol.decode(json.dumps(message), MODELS), MODELS)
    assert mtype == request.TYPE


@pytest.mark.parametrize(("mtype", "index", "message"), EXAMPLES, ids=IDS)
@pytest.mark.parametrize("bad", ["\ud800", "ok\udfff", "\udc00\ud800", "a\ud83dz"])
def test_lone_surrogate_in_any_field_at_any_depth(mtype: str, index: int, message: dict[str, Any], bad: str) -> None:
    for path in paths(message):
        error = decode_error(json.dumps(replaced(message, path, bad)))  # ensure_ascii: "\\ud800" escapes
        assert (error.code, error.field) == ("invalid_text", dotted(path)), path
        # the id is echoed when it is itself fine, so the reply still carries reply_to
        if path != ("id",) and "id" in message:
            assert error.context.get("request_id") == message["id"]
        else:
            assert "request_id" not in error.context


@pytest.mark.parametrize(("mtype", "index", "message"), EXAMPLES, ids=IDS)
def test_lone_surrogate_in_any_field_name(mtype: str, index: int, message: dict[str, Any]) -> None:
    containers: list[Path] = [()] + [p for p in paths(message) if isinstance(_at(message, p), dict)]
    for path in containers:
        target = copy.deepcopy(message)
        inner = _at(target, path)
        inner["x\ud800"] = 1
        error = decode_error(json.dumps(target))
        assert error.code == "invalid_text"
        assert error.field == dotted((*path, "x\\ud800"))


def _at(message: Any, path: Path) -> Any:
    for part in path:
        message = message[part]
    return message


def test_raw_surrogates_and_pairs() -> None:
    # a str handed in by an in-process caller may hold raw surrogates: refused before parsing
    assert decode_error('{"type":"chat","text":"\ud800"}').code == "invalid_text"
    # an escaped *pair* is one valid character and passes
    chat = protocol.validate(protocol.decode('{"type":"chat","text":"smile \\ud83d\\ude00"}'))
    assert isinstance(chat, protocol.Chat) and chat.text == "smile \U0001f600"


BIG_NUMBERS = ["9" * 5000, "-" + "9" * 5000, str(MAX_INT + 1), str(-MAX_INT - 1), "1e999", "-1e999",
               "NaN", "Infinity", "-Infinity", "0." + "1" * 400, "1e" + "9" * 20, "1." + "0" * 70]


@pytest.mark.parametrize(("mtype", "index", "message"), EXAMPLES, ids=IDS)
@pytest.mark.parametrize("number", BIG_NUMBERS)
def test_numbers_bounded_in_any_field(mtype: str, index: int, message: dict[str, Any], number: str) -> None:
    for path in paths(message):
        text = json.dumps(replaced(message, path, "@@N@@")).replace('"@@N@@"', number)
        error = decode_error(text)
        assert (error.code, error.field) == ("invalid_number", dotted(path)), (path, number[:20])


def test_bounds_are_inclusive() -> None:
    for value in (MAX_INT, -MAX_INT, 0, 1.5e308, -2.5):
        assert loads(json.dumps({"type": "ping", "v": value}))["v"] == value


def test_row16_example_is_a_validation_error_without_reply_to() -> None:
    error = decode_error('{"type":"ping","id":' + "9" * 5000 + "}")
    assert (error.code, error.field) == ("invalid_number", "id") and "request_id" not in error.context


@pytest.mark.parametrize(("mtype", "index", "message"), EXAMPLES, ids=IDS)
def test_nesting_bounded_in_any_field(mtype: str, index: int, message: dict[str, Any]) -> None:
    for path in paths(message):
        depth_here = len(path)  # the message object is level 1, so the value at ``path`` sits at len(path) + 1
        for levels, nest in ((MAX_DEPTH - depth_here + 1, "["), (MAX_DEPTH, "{\"k\":"), (5000, "["),
                             (100_000, "[")):
            close = "]" if nest == "[" else "}"
            deep = nest * levels + "0" + close * levels
            text = json.dumps(replaced(message, path, "@@D@@")).replace('"@@D@@"', deep)
            error = decode_error(text)
            assert error.code == "nesting_too_deep", (path, levels)


def test_deepest_allowed_nesting_passes() -> None:
    value: Any = 0
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    data = loads(json.dumps({"type": "bot.add", "bot": "echo", "deep": value}))
    assert data["bot"] == "echo"


@pytest.mark.parametrize("text", ["", "{", "[1,]", '{"type": "ping",}', "\x00", "nul\x00l", '{"a":1}x', "\ufeff{}"])
def test_not_json_is_invalid_json(text: str) -> None:
    assert decode_error(text).code in ("invalid_json", "invalid_message")


def test_encode_is_always_sendable() -> None:
    text = protocol.encode({"type": "chat", "text": "a\ud800b", "k\udfff": [1.0, float("nan")]})
    text.encode("utf-8")
    assert json.loads(text) == {"type": "chat", "text": "a\ufffdb", "k\ufffd": [1.0, None]}
    assert sendable("ok \U0001f600") == "ok \U0001f600"
    assert sendable("\ud83d\ude00") == "\U0001f600"  # a raw pair is joined, not replaced
    assert dumps({"n": float("inf")}) == '{"n":null}'


# -- the fast path (orjson) agrees with the reference parser ------------------------------------------------
_EDGE_TEXTS = [
    '{"type":"ping","id":1}', '{"a":9007199254740991}', '{"a":9007199254740992}', '{"a":-9007199254740992}',
    '{"a":18446744073709551616}', '{"a":1e19}', '{"a":1e999}', '{"a":NaN}', '{"a":-Infinity}', '{"a":1e-400}',
    '{"a":"\\ud800"}', '{"a":"\\ud83d\\ude00"}', '{"\\udc00":1}', '[' * 40 + ']' * 40, '{"a":0.' + '0' * 70 + '1}',
    '{"a":"' + '1' * 80 + '"}', '{"a":1,"a":2}', '{"a":true,"b":null,"c":[1.5,-0,"x"]}', '{"a":', '"\x01"', '',
    '{"id":"' + 'x' * 70 + '","a":99999999999999999}', '{"id":7,"n":12345678901234567890}',
    # long number literals: refused for their length (floats) or value (integers); digit runs in strings are text
    '{"a":' + '1' * 65 + 'e-60}', '{"a":1e' + '0' * 70 + '1}', '{"a":' + '1' * 70 + '}', '{"a":-' + '9' * 66 + '}',
    '{"a":1.5,"b":"' + '1' * 80 + '"}', '{"a":[2.5,{"b":0.' + '0' * 63 + '1}]}', '{"a":0.' + '0' * 62 + '1}',
    '{"sdp":"v=0\\r\\n' + '7' * 200 + '","n":3}',
]


def _outcome(parse: Any, text: str) -> Any:
    try:
        return ("ok", parse(text))
    except ValidationError as exc:
        return ("error", exc.code, exc.message, exc.field, exc.context)


@pytest.mark.parametrize("text", _EDGE_TEXTS)
def test_fast_path_matches_reference_on_edge_cases(text: str) -> None:
    assert _outcome(loads, text) == _outcome(_loads_reference, text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
@settings(max_examples=300, deadline=None)
def test_fast_path_matches_reference(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):  # \u escapes, then raw UTF-8
        assert _outcome(loads, text) == _outcome(_loads_reference, text)
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
