"""One valid example of every request type (core, admin, bots and workers): the seeds that property tests and the
WebSocket fuzzer (``scripts/fuzz_ws.py``) mutate. :func:`all_request_models` registers every model so that
:func:`voicebot.protocol.validate` knows them all, as a full server does."""

from __future__ import annotations

from typing import Any

from .. import protocol
from ..workers._protocol import REQUESTS

__all__ = ["VALID_MESSAGES", "all_request_models"]

_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"

#: ``{type: message}``; every registered request type has at least one entry (a test checks it).
VALID_MESSAGES: dict[str, list[dict[str, Any]]] = {
    "hello": [{"type": "hello", "id": 1, "name": "alice", "protocol": 1, "kind": "user"},
              {"type": "hello", "id": "h", "name": "bob", "resume": "t" * 40, "password": "secret12",
               "admin_token": "x" * 20}],
    "lobby.create": [{"type": "lobby.create", "id": 2, "name": "room", "private": False, "password": "pw",
                      "max_members": 4, "persistent": False}],
    "lobby.list": [{"type": "lobby.list", "id": 3}, {"type": "lobby.list", "id": 4, "limit": 10, "cursor": "c"}],
    "lobby.join": [{"type": "lobby.join", "id": 5, "lobby_id": "l_1", "password": "pw"},
                   {"type": "lobby.join", "id": 6, "lobby_id": "l_1", "ticket": "t" * 20}],
    "lobby.leave": [{"type": "lobby.leave", "id": 7}],
    "signal": [{"type": "signal", "id": 8, "to": "p_1", "kind": "offer", "sdp": _SDP},
               {"type": "signal", "to": "p_1", "kind": "answer", "sdp": _SDP},
               {"type": "signal", "to": "p_1", "kind": "candidate",
                "candidate": {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 40000 typ host",
                              "sdpMid": "0", "sdpMLineIndex": 0}},
               {"type": "signal", "to": "p_1", "kind": "candidate", "candidate": None},
               {"type": "signal", "to": "p_1", "kind": "bye"}],
    "chat": [{"type": "chat", "id": 9, "text": "hello there"}],
    "caption": [{"type": "caption", "id": 31, "text": "what is two plus three", "role": "user", "final": True},
                {"type": "caption", "text": "Two plus", "role": "assistant", "about": "p_1", "final": False,
                 "turn_id": "t1"}],
    "bot.status": [{"type": "bot.status", "id": 32, "state": "thinking"},
                   {"type": "bot.status", "state": "degraded", "detail": "llm chain failed"}],
    "ping": [{"type": "ping", "id": 10}],
    "name.register": [{"type": "name.register", "id": 11, "password": "password1"}],
    "admin.stats": [{"type": "admin.stats", "id": 12}],
    "admin.kick": [{"type": "admin.kick", "id": 13, "peer_id": "p_1"}],
    "admin.close_lobby": [{"type": "admin.close_lobby", "id": 14, "lobby_id": "l_1"}],
    "admin.audit": [{"type": "admin.audit", "id": 15, "limit": 10, "before_id": 3}],
    "bot.list": [{"type": "bot.list", "id": 16}],
    "bot.add": [{"type": "bot.add", "id": 17, "bot": "echo"},
                {"type": "bot.add", "id": 18, "bot": "speaker", "lobby_id": "l_1", "text": "hi",
                 "voice": {"rate": 1.5, "tags": ["a", "b"]}}],
    "bot.remove": [{"type": "bot.remove", "id": 19, "peer_id": "p_1"}],
    "worker.register": [{"type": "worker.register", "id": 20, "token": "tok", "capacity": 2, "name": "w",
                         "bots": [{"name": "echo", "description": "echoes"}]}],
    "worker.started": [{"type": "worker.started", "id": 21, "job_id": "j_1", "peer_id": "p_1"}],
    "worker.failed": [{"type": "worker.failed", "id": 22, "job_id": "j_1", "code": "bot_failed",
                       "message": "boom", "retryable": True}],
    "worker.stopped": [{"type": "worker.stopped", "id": 23, "job_id": "j_1", "reason": "stopped"}],
}


def all_request_models() -> dict[str, type[protocol.Request]]:
    """Register the admin, bot and worker request models (as a full ``voicebot serve`` does); return them all."""
    models: tuple[type[protocol.Request], ...] = (
        protocol.NameRegister, protocol.AdminStats, protocol.AdminKick, protocol.AdminCloseLobby,
        protocol.AdminAudit, *REQUESTS)
    for model in models:
        protocol.register_request(model)
    return dict(protocol.REQUEST_TYPES)
