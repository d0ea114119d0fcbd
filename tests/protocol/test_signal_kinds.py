"""Issue 12 row 19 in general: every ``signal`` kind accepts only its own fields, each bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from voicebot import protocol
from voicebot.errors import ValidationError
from voicebot.protocol import MAX_SDP_BYTES
from voicebot.testing import open_client

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"
CAND = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
KINDS = ("offer", "answer", "candidate", "bye")
VALID: dict[str, dict[str, Any]] = {"offer": {"sdp": SDP}, "answer": {"sdp": SDP}, "candidate": {"candidate": CAND},
                                    "bye": {}}


def check(fields: dict[str, Any]) -> ValidationError | protocol.Signal:
    try:
        req = protocol.validate(protocol.decode(json.dumps({"type": "signal", "to": "p_1", **fields})))
    except ValidationError as exc:
        return exc
    assert isinstance(req, protocol.Signal)
    return req


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_valid_alone(kind: str) -> None:
    assert isinstance(check({"kind": kind, **VALID[kind]}), protocol.Signal)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("payload", ["sdp", "candidate"])
def test_foreign_payload_is_refused_for_every_kind(kind: str, payload: str) -> None:
    own = VALID[kind]
    if payload in own:
        return
    error = check({"kind": kind, **own, payload: SDP + "a" * 60_000 if payload == "sdp" else CAND})
    assert isinstance(error, ValidationError)
    assert (error.code, error.field) == ("invalid_message", payload)
    # null stands for "absent" and is fine (except that candidate: null is meaningful for kind candidate)
    assert isinstance(check({"kind": kind, **own, payload: None}), protocol.Signal)


@pytest.mark.parametrize("kind", ["offer", "answer"])
def test_sdp_bounded_and_required(kind: str) -> None:
    assert isinstance(check({"kind": kind, "sdp": SDP + "a" * (MAX_SDP_BYTES - len(SDP))}), protocol.Signal)
    for sdp in (SDP + "a" * (MAX_SDP_BYTES - len(SDP) + 1), SDP + "é" * (MAX_SDP_BYTES // 2), "x=0", None):
        error = check({"kind": kind, "sdp": sdp})
        assert isinstance(error, ValidationError) and error.field == "sdp"
    error = check({"kind": kind})
    assert isinstance(error, ValidationError) and error.field == "sdp"


@pytest.mark.parametrize(("field", "bad"), [("candidate", "c" * 2049), ("candidate", 5), ("sdpMid", "m" * 65),
                                             ("sdpMid", 3), ("sdpMLineIndex", 1025), ("sdpMLineIndex", -1),
                                             ("sdpMLineIndex", "0")])
def test_candidate_fields_bounded(field: str, bad: Any) -> None:
    error = check({"kind": "candidate", "candidate": {**CAND, field: bad}})
    assert isinstance(error, ValidationError)
    assert error.field == f"candidate.{field}"


def test_candidate_required_for_kind_candidate() -> None:
    error = check({"kind": "candidate"})
    assert isinstance(error, ValidationError) and error.field == "candidate"
    assert isinstance(check({"kind": "candidate", "candidate": None}), protocol.Signal)


async def test_relay_carries_only_the_kinds_fields(server: Any, autojump_clock: object) -> None:
    async with open_client(server, "a") as a, open_client(server, "b") as b:
        room = await a.create_lobby("room")
        await a.join(room["id"])
        await b.join(room["id"])
        for kind in KINDS:
            await a.send({"type": "signal", "to": b.peer_id, "kind": kind, **VALID[kind], "extra": "x" * 1000})
            got = await b.next_event("signal")
            assert set(got) == {"type", "from", "kind", "lobby_id", *VALID[kind]}, kind
