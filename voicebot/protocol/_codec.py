"""Text frame ⇄ message: JSON decoding, envelope checks and model validation (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from ..errors import ValidationError
from ._fast import fast_signal
from ._requests import FIELD_ERROR, REQUEST_TYPES, Request, Signal
from ._safety import dumps, loads

__all__ = ["Envelope", "decode", "encode", "validate"]


class Envelope:
    """A decoded JSON object with its ``type`` and ``id`` checked, before the type's own validation."""

    __slots__ = ("data", "id", "type")

    def __init__(self, data: dict[str, Any], type_: str, id_: str | int | None) -> None:
        self.data = data
        self.type = type_
        self.id = id_


def decode(text: str | bytes, types: Mapping[str, type[Request]] = REQUEST_TYPES) -> Envelope:
    """Parse one frame into an :class:`Envelope`.

    Raises ValidationError: ``invalid_json`` (not JSON), ``invalid_message`` (binary frame, not an object,
    bad ``type`` or ``id``), ``unknown_type``, and the text-safety rule's ``invalid_text``, ``invalid_number``,
    ``nesting_too_deep`` (see :mod:`voicebot.protocol._safety`) for every field at every depth. Whenever the
    ``id`` could be read it is kept in the error's context as ``request_id`` so the reply still carries ``reply_to``.
    ``types`` is the receiving server's own registry (core types plus its extensions; see
    ``Server.request_types``), never shared between servers.
    """
    if isinstance(text, bytes):
        raise ValidationError("binary frames are not supported; send JSON text frames", code="invalid_message")
    data = loads(text)
    if not isinstance(data, dict):
        raise ValidationError(f"message must be a JSON object, not {_json_kind(data)}", code="invalid_message")
    rid = data.get("id")
    if rid is not None and not _valid_id(rid):
        raise ValidationError("id: must be a string of at most 64 characters or an integer", field="id")
    mtype = data.get("type")
    if isinstance(mtype, str) and mtype in types:  # the common case first: no error context is built
        return Envelope(data, mtype, rid)
    context = {"request_id": rid} if rid is not None else {}
    if mtype is None:
        raise ValidationError("type: missing", field="type", context=context)
    if not isinstance(mtype, str):
        raise ValidationError(f"type: must be a string, not {_json_kind(mtype)}", field="type", context=context)
    raise ValidationError(f"unknown message type {mtype[:64]!r}", code="unknown_type", field="type", context=context)


def validate(envelope: Envelope, types: Mapping[str, type[Request]] = REQUEST_TYPES) -> Request:
    """Validate an envelope against its type's model in ``types``; errors name the first offending field."""
    model = types[envelope.type]
    if model is Signal:  # the relay's hot path: the plainest valid shapes skip pydantic (same result)
        fast = fast_signal(envelope.data)
        if fast is not None:
            return fast
    try:
        return model.model_validate(envelope.data)
    except pydantic.ValidationError as exc:
        raise _field_error(exc, envelope) from None


def encode(message: dict[str, Any]) -> str:
    """Serialise a server message (compact JSON, UTF-8 kept as is); the result is always sendable as a text
    frame (lone surrogates become U+FFFD), so no writer can die on what it is given."""
    return dumps(message)


def _field_error(exc: pydantic.ValidationError, envelope: Envelope) -> ValidationError:
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in first["loc"])
    text = str(first["msg"])
    ctx = first.get("ctx") or {}
    if first["type"] == FIELD_ERROR:  # a cross-field rule names its field as data (no location of its own)
        loc, text = ".".join(filter(None, (loc, str(ctx["field"])))), str(ctx["text"])
    field = loc or None
    message = f"{envelope.type}: {field}: {text}" if field else f"{envelope.type}: {text}"
    context = {"request_id": envelope.id, "errors": exc.error_count()}
    return ValidationError(message, code="invalid_message", field=field, context=context)


def _valid_id(rid: Any) -> bool:
    if isinstance(rid, bool):
        return False
    return isinstance(rid, int) or (isinstance(rid, str) and len(rid) <= 64)


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
