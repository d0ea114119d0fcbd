"""Fast validation of the relay's hot request (``signal`` with an ``sdp`` or ``bye``), same rules as the model.

pydantic's strict validation of :class:`~voicebot.protocol.Signal` costs several microseconds per message, most of
it in generic machinery. :func:`fast_signal` accepts only the plainest valid shape — ``to`` a string of 1–64
characters; ``kind`` ``offer``/``answer`` with a string ``sdp`` starting ``v=0`` of at most ``MAX_SDP_BYTES``, or
``bye`` without ``sdp``; no ``candidate`` key; ``id`` absent, a string or a non-boolean integer — and builds the
model from it unvalidated (``model_construct``, the values are exactly what validation would keep). For anything
else it returns None and the model decides, so every error (and every rarer shape) is the model's own.
"""

from __future__ import annotations

from typing import Any, Literal

from ._requests import MAX_SDP_BYTES, Signal

__all__ = ["fast_signal"]

_KINDS: dict[str, Literal["offer", "answer", "bye"]] = {"offer": "offer", "answer": "answer", "bye": "bye"}
"""The kinds the fast path takes (a ``candidate`` goes to the model), typed as the model's field."""


def fast_signal(data: dict[str, Any]) -> Signal | None:
    """The :class:`Signal` that ``Signal.model_validate(data)`` returns, when ``data`` has the plain shape above;
    None when the model must decide."""
    to = data.get("to")
    kind = data.get("kind")
    sdp = data.get("sdp")
    rid = data.get("id")
    if type(to) is not str or not 1 <= len(to) <= 64 or type(kind) is not str or "candidate" in data:
        return None
    if rid is not None and type(rid) is not str and type(rid) is not int:
        return None
    plain = _KINDS.get(kind)
    if plain is None:
        return None
    if plain == "bye":
        if sdp is not None:
            return None
    elif type(sdp) is not str or len(sdp.encode()) > MAX_SDP_BYTES or not sdp.startswith("v=0"):
        return None
    fields = {"id", "to", "kind"} if "id" in data else {"to", "kind"}  # the keys sent, as validation records them
    if "sdp" in data:
        fields.add("sdp")
    # Every field given (``candidate`` too): model_construct then skips its per-field default lookups.
    return Signal.model_construct(fields, id=rid, to=to, kind=plain, sdp=sdp, candidate=None)
