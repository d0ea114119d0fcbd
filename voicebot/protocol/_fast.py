"""Fast validation of the relay's hot request (``signal`` with an ``sdp`` or ``bye``), same rules as the model.

pydantic's strict validation of :class:`~voicebot.protocol.Signal` costs several microseconds per message, most of
it in generic machinery, and so does ``model_construct`` (it looks up every field's default and alias).
:func:`fast_signal` accepts only the plainest valid shape — ``to`` a string of 1–64 characters; ``kind``
``offer``/``answer`` with a string ``sdp`` starting ``v=0`` of at most ``MAX_SDP_BYTES``, or ``bye`` without
``sdp``; no ``candidate`` key; ``id`` absent, a string or a non-boolean integer — and builds the instance from it
unvalidated (the values are exactly what validation would keep). For anything else it returns None and the model
decides, so every error (and every rarer shape) is the model's own.

The instance is built the way pydantic 2's ``model_construct`` builds it — a new object whose ``__dict__`` holds
every field and whose three other slots hold the fields set, no extra and no private values — but without its
per-field machinery. Whether the installed pydantic still lays out a model that way is checked once, on first use,
against ``model_construct`` itself; if not, ``model_construct`` is used (correct, only slower).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import pydantic

from ._requests import MAX_SDP_BYTES, Signal

__all__ = ["fast_signal"]

_KINDS: dict[str, Literal["offer", "answer", "bye"]] = {"offer": "offer", "answer": "answer", "bye": "bye"}
"""The kinds the fast path takes (a ``candidate`` goes to the model), typed as the model's field."""

_SHORT_SDP = MAX_SDP_BYTES // 4
"""An ``sdp`` of at most this many characters is within ``MAX_SDP_BYTES`` whatever they are (UTF-8 needs at most 4
bytes per character), so only longer ones are encoded to count their bytes."""

_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_new = object.__new__
_set = object.__setattr__


def fast_signal(data: dict[str, Any]) -> Signal | None:
    """The :class:`Signal` that ``Signal.model_validate(data)`` returns, when ``data`` has the plain shape above;
    None when the model must decide."""
    to = data.get("to")
    if type(to) is not str or not 0 < len(to) <= 64 or "candidate" in data:
        return None
    kind = data.get("kind")
    plain = _KINDS.get(kind) if type(kind) is str else None
    if plain is None:
        return None
    rid = data.get("id")
    if rid is not None and type(rid) is not str and type(rid) is not int:
        return None
    sdp = data.get("sdp")
    if plain == "bye":
        if sdp is not None:
            return None
    elif (type(sdp) is not str or not sdp.startswith("v=0")
          or (len(sdp) > _SHORT_SDP and len(sdp.encode()) > MAX_SDP_BYTES)):
        return None
    # The keys sent, as validation records them in the fields set.
    if "sdp" in data:
        fields = {"id", "to", "kind", "sdp"} if "id" in data else {"to", "kind", "sdp"}
    else:
        fields = {"id", "to", "kind"} if "id" in data else {"to", "kind"}
    return _build(fields, {"id": rid, "to": to, "kind": plain, "sdp": sdp, "candidate": None})


def _build(fields: set[str], values: dict[str, Any]) -> Signal:
    """A :class:`Signal` holding ``values`` (every field) with ``fields`` as the fields set."""
    if not _layout_known():  # decided once, on first use
        return Signal.model_construct(fields, **values)
    signal = _new(Signal)
    _set(signal, "__dict__", values)
    _set(signal, "__pydantic_fields_set__", fields)
    _set(signal, "__pydantic_extra__", None)
    _set(signal, "__pydantic_private__", None)
    return signal


@functools.cache
def _layout_known() -> bool:
    """True when the installed pydantic builds a :class:`Signal` as :func:`_build` does: the same slots, no
    private attributes or post-init hook, and ``model_construct`` filling them with exactly these values."""
    if tuple(pydantic.BaseModel.__slots__) != _SLOTS or Signal.__private_attributes__:
        return False
    if getattr(Signal, "__pydantic_post_init__", None) is not None:
        return False
    values: dict[str, Any] = {"id": None, "to": "p", "kind": "bye", "sdp": None, "candidate": None}
    reference = Signal.model_construct({"to", "kind"}, **values)
    return (reference.__dict__ == values and reference.__pydantic_fields_set__ == {"to", "kind"}
            and reference.__pydantic_extra__ is None and reference.__pydantic_private__ is None)
