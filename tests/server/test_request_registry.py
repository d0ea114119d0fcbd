"""Each server decodes its own request types: an extension added to one server is unknown to another."""

from __future__ import annotations

from typing import ClassVar

import pytest

from voicebot import protocol
from voicebot.errors import RequestContext, ValidationError
from voicebot.server import Connection, Server
from voicebot.testing import settings_for_tests


class Poke(protocol.Request):
    """An extension request only one server knows."""

    TYPE: ClassVar[str] = "test.poke"
    strength: int


async def _poke(conn: Connection, req: Poke, rctx: RequestContext) -> None:
    conn.send({"type": "test.poked", "strength": req.strength})  # typed: req is a Poke, no isinstance needed


def test_extension_types_are_per_server() -> None:
    extended, plain = Server(settings_for_tests()), Server(settings_for_tests())
    extended.add_handler(Poke, _poke)
    frame = '{"type": "test.poke", "strength": 3}'
    request = protocol.validate(protocol.decode(frame, extended.request_types), extended.request_types)
    assert isinstance(request, Poke) and request.strength == 3
    with pytest.raises(ValidationError) as info:
        protocol.decode(frame, plain.request_types)
    assert info.value.code == "unknown_type"
    with pytest.raises(ValidationError):
        protocol.decode(frame)  # the core registry is never mutated
    assert "test.poke" not in protocol.REQUEST_TYPES
