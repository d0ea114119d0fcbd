"""Protocol v1: JSON text frames, one object per frame, always a ``type`` (see README "Protocol").

Pure data: decoding, validation and encoding, no I/O.
"""

from ._admin import AdminAudit, AdminCloseLobby, AdminKick, AdminStats, NameRegister
from ._codec import Envelope, decode, encode, register_request, validate
from ._requests import (
    LOBBY_LIST_LIMIT,
    LOBBY_LIST_MAX,
    MAX_SDP_BYTES,
    REQUEST_TYPES,
    BotStatus,
    Candidate,
    Caption,
    Chat,
    Hello,
    LobbyCreate,
    LobbyJoin,
    LobbyLeave,
    LobbyList,
    Ping,
    Request,
    Signal,
)
from ._safety import MAX_DEPTH, MAX_INT, sendable

#: Protocol version spoken by this server.
PROTOCOL_VERSION = 1

__all__ = [
    "LOBBY_LIST_LIMIT",
    "LOBBY_LIST_MAX",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_SDP_BYTES",
    "PROTOCOL_VERSION",
    "REQUEST_TYPES",
    "AdminAudit",
    "AdminCloseLobby",
    "AdminKick",
    "AdminStats",
    "BotStatus",
    "Candidate",
    "Caption",
    "Chat",
    "Envelope",
    "Hello",
    "LobbyCreate",
    "LobbyJoin",
    "LobbyLeave",
    "LobbyList",
    "NameRegister",
    "Ping",
    "Request",
    "Signal",
    "decode",
    "encode",
    "register_request",
    "sendable",
    "validate",
]
