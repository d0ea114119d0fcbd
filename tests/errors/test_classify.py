"""The classifier: nested groups, severity ordering, passthrough of control flow, every foreign mapping."""

from __future__ import annotations

import json
import sqlite3

import aioice.stun
import aiortc.exceptions
import av.error
import pytest
import trio
import trio_websocket

from voicebot.errors import (
    PASSTHROUGH,
    Category,
    LobbyError,
    PersistenceError,
    Severity,
    ValidationError,
    VoiceBotError,
    classify,
    flatten,
    map_exception,
    split_passthrough,
)


def _cancelled() -> trio.Cancelled:
    # trio.Cancelled has no public constructor; make a real one.
    caught: list[trio.Cancelled] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled as exc:
                caught.append(exc)
                raise

    trio.run(main)
    return caught[0]


def test_three_level_group_picks_most_severe_and_keeps_all_parts() -> None:
    low = LobbyError("full", code="lobby_full")
    medium = trio.TooSlowError()
    high = RuntimeError("boom")
    group = ExceptionGroup("outer", [low, ExceptionGroup("mid", [medium, ExceptionGroup("inner", [high])])])
    result = classify(group)
    assert [p.code for p in result.parts] == ["lobby_full", "timeout", "internal_error"]
    assert result.error.code == "internal_error"
    assert result.severity is Severity.HIGH
    assert result.originals == (low, medium, high)
    assert result.error.__cause__ is high


def test_ties_keep_the_first_most_severe() -> None:
    a = VoiceBotError("a", code="a", severity=Severity.MEDIUM)
    b = VoiceBotError("b", code="b", severity=Severity.MEDIUM)
    assert classify(ExceptionGroup("g", [a, b])).error is a


def test_cancelled_inside_group_passes_through_untouched() -> None:
    cancelled = _cancelled()
    failure = ValueError("x")
    group = BaseExceptionGroup("g", [failure, BaseExceptionGroup("inner", [cancelled, KeyboardInterrupt()])])
    passthrough, rest = split_passthrough(group)
    assert passthrough is not None and rest is not None
    leaves = list(flatten(passthrough))
    assert leaves[0] is cancelled and isinstance(leaves[1], KeyboardInterrupt)
    assert list(flatten(rest)) == [failure]
    assert classify(rest).error.code == "internal_error"
    with pytest.raises(TypeError):
        classify(group)
    assert split_passthrough(cancelled) == (cancelled, None)
    assert split_passthrough(failure) == (None, failure)
    assert SystemExit in PASSTHROUGH and KeyboardInterrupt in PASSTHROUGH


def _closed() -> trio_websocket.ConnectionClosed:
    return trio_websocket.ConnectionClosed(trio_websocket.CloseReason(1006, None))


def _sqlite(kind: type[sqlite3.Error], text: str) -> sqlite3.Error:
    return kind(text)


@pytest.mark.parametrize(
    ("exc", "category", "severity", "code", "retryable"),
    [
        (json.JSONDecodeError("Expecting value", "x", 0), Category.VALIDATION, Severity.LOW, "invalid_json", False),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
         Category.VALIDATION, Severity.LOW, "invalid_encoding", False),
        (trio.BrokenResourceError(), Category.NETWORK, Severity.MEDIUM, "connection_broken", True),
        (trio.ClosedResourceError(), Category.SYSTEM, Severity.MEDIUM, "resource_closed", False),
        (trio.TooSlowError(), Category.NETWORK, Severity.MEDIUM, "timeout", True),
        (TimeoutError(), Category.NETWORK, Severity.MEDIUM, "timeout", True),
        (_closed(), Category.WEBSOCKET, Severity.LOW, "connection_closed", True),
        (trio_websocket.HandshakeError(), Category.WEBSOCKET, Severity.LOW, "handshake_failed", False),
        (_sqlite(sqlite3.OperationalError, "database is locked"), Category.PERSISTENCE, Severity.MEDIUM,
         "database_busy", True),
        (_sqlite(sqlite3.OperationalError, "no such table: x"), Category.PERSISTENCE, Severity.MEDIUM,
         "database_unavailable", True),
        (_sqlite(sqlite3.IntegrityError, "UNIQUE constraint failed"), Category.PERSISTENCE, Severity.LOW,
         "constraint_violation", False),
        (_sqlite(sqlite3.DatabaseError, "database disk image is malformed"), Category.PERSISTENCE,
         Severity.CRITICAL, "database_corrupt", False),
        (_sqlite(sqlite3.InterfaceError, "bad parameter"), Category.PERSISTENCE, Severity.HIGH,
         "database_error", False),
        (ConnectionResetError(), Category.NETWORK, Severity.MEDIUM, "connection_lost", True),
        (OSError(28, "No space left on device"), Category.SYSTEM, Severity.HIGH, "os_error", False),
        (MemoryError(), Category.SYSTEM, Severity.CRITICAL, "out_of_memory", False),
        (KeyError("secret-internal"), Category.SYSTEM, Severity.HIGH, "internal_error", False),
    ],
)
def test_foreign_exception_mapping(
    exc: BaseException, category: Category, severity: Severity, code: str, retryable: bool
) -> None:
    mapped = map_exception(exc)
    assert (mapped.category, mapped.severity, mapped.code, mapped.retryable) == (category, severity, code, retryable)
    assert mapped.__cause__ is exc
    assert mapped.context["exception"].endswith(type(exc).__qualname__)
    if code == "internal_error":  # no internals leak to clients
        assert "secret" not in mapped.message and "secret" not in str(mapped.to_wire())


def test_aiortc_aioice_av_exceptions_map_to_webrtc() -> None:
    ice = aioice.stun.TransactionFailed(aioice.stun.Message(1, 1))
    assert (map_exception(ice).category, map_exception(ice).code) == (Category.WEBRTC, "ice_failed")
    assert map_exception(ice).recovery == "ice_restart"
    rtc = aiortc.exceptions.InvalidStateError("bad state")
    assert (map_exception(rtc).category, map_exception(rtc).recovery) == (Category.WEBRTC, "rebuild_peer")
    codec = av.error.FFmpegError(22, "bad")
    assert map_exception(codec).code == "media_error"


def test_voicebot_errors_map_to_themselves_and_wire_form() -> None:
    err = ValidationError("name: too long", field="name", code="name_invalid")
    assert map_exception(err) is err
    assert err.to_wire() == {"code": "name_invalid", "category": "validation", "severity": "low",
                             "message": "name: too long", "retryable": False, "field": "name"}
    assert PersistenceError().retryable and PersistenceError().severity is Severity.MEDIUM
    assert "lobby_full" in str(LobbyError("full", code="lobby_full"))
