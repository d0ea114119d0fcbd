"""The fast path for ``signal`` gives exactly the model's result, and leaves every other shape to the model."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot import protocol
from voicebot.protocol import MAX_SDP_BYTES, Signal
from voicebot.protocol._fast import _layout_known, fast_signal

_ANY = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4) | st.just([])
_TO = st.text(min_size=0, max_size=70) | _ANY
_KIND = st.sampled_from(["offer", "answer", "candidate", "bye", "Offer", ""]) | _ANY
_SDP = (st.builds(lambda body: "v=0" + body, st.text(max_size=30)) | st.text(max_size=10)
        | st.just("v=0" + "x" * (MAX_SDP_BYTES - 3)) | st.just("v=0" + "x" * (MAX_SDP_BYTES - 2))
        | st.just("v=0" + "é" * (MAX_SDP_BYTES // 2)) | _ANY)
_ID = st.text(max_size=8) | st.integers(-(2**53), 2**53) | st.booleans() | st.none() | st.floats(allow_nan=False)
_CANDIDATE = st.none() | st.fixed_dictionaries({"candidate": st.text(max_size=5)}) | _ANY


@st.composite
def signals(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "signal"}
    for key, strategy in (("to", _TO), ("kind", _KIND), ("sdp", _SDP), ("id", _ID), ("candidate", _CANDIDATE),
                          ("extra", _ANY)):
        if draw(st.booleans()):
            data[key] = draw(strategy)
    return data


def _model(data: dict[str, Any]) -> Signal | str:
    try:
        return Signal.model_validate(data)
    except pydantic.ValidationError as exc:
        return f"error: {exc.errors(include_url=False)[0]['type']}"


@given(signals())
@settings(max_examples=2000, deadline=None)
def test_fast_path_is_the_model_or_defers_to_it(data: dict[str, Any]) -> None:
    fast = fast_signal(data)
    if fast is None:
        return
    model = _model(data)
    assert isinstance(model, Signal), (data, model)
    assert fast == model
    assert fast.model_fields_set == model.model_fields_set
    assert fast.model_dump() == model.model_dump()


def test_the_hot_shapes_take_the_fast_path() -> None:
    for data in ({"type": "signal", "to": "p_1", "kind": "answer", "sdp": "v=0\r\n"},
                 {"type": "signal", "to": "p_1", "kind": "offer", "sdp": "v=0", "id": 7, "x": 1},
                 {"type": "signal", "to": "p" * 64, "kind": "bye", "id": "r1"}):
        assert fast_signal(data) == Signal.model_validate(data)


def test_every_refusal_is_the_models() -> None:
    """Shapes the fast path must leave to the model, each of which the model refuses (or accepts) itself."""
    cases = [
        {"to": "p_1", "kind": "answer"},  # sdp required
        {"to": "p_1", "kind": "answer", "sdp": "x=0"},
        {"to": "p_1", "kind": "answer", "sdp": "v=0" + "é" * (MAX_SDP_BYTES // 2)},
        {"to": "", "kind": "bye"}, {"to": "p" * 65, "kind": "bye"}, {"to": 5, "kind": "bye"},
        {"to": "p_1", "kind": "bye", "sdp": "v=0"}, {"to": "p_1", "kind": "bye", "id": True},
        {"to": "p_1", "kind": "nope"}, {"to": "p_1", "kind": "candidate", "candidate": None},
    ]
    for fields in cases:
        data = {"type": "signal", **fields}
        assert fast_signal(data) is None or isinstance(_model(data), Signal)
        expected = _model(data)
        try:
            got: Any = protocol.validate(protocol.decode(json.dumps(data)))
        except Exception as exc:  # compared below
            got = exc
        if isinstance(expected, Signal):
            assert got == expected
        else:
            assert not isinstance(got, Signal), (data, got)


def test_the_installed_pydantic_lays_out_models_as_the_fast_path_builds_them() -> None:
    """If a pydantic upgrade changes how a model instance is laid out, the fast path falls back to
    ``model_construct`` (still correct, slower): this test says so, so the upgrade is looked at."""
    assert _layout_known()
    fast = fast_signal({"type": "signal", "to": "p_1", "kind": "answer", "sdp": "v=0\r\n", "id": 3})
    assert fast is not None and fast.sdp == "v=0\r\n" and fast.id == 3 and fast.candidate is None
    assert fast.model_fields_set == {"id", "to", "kind", "sdp"}
    assert fast.model_dump() == {"id": 3, "to": "p_1", "kind": "answer", "sdp": "v=0\r\n", "candidate": None}


def test_unhashable_kinds_are_left_to_the_model() -> None:
    for kind in ([], {}, [1], {"a": 1}):
        data = {"type": "signal", "to": "p_1", "kind": kind, "sdp": "v=0"}
        assert fast_signal(data) is None
        assert isinstance(_model(data), str)
