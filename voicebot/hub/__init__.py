"""The hub core: lobbies, sessions, membership and routing, sans-IO (events in, actions out)."""

from ._core import KICKED, RESUMED_ELSEWHERE, Hub, token_hash
from ._handoff import adopt, hand_off, prepend
from ._model import (
    Action,
    Close,
    ConnId,
    Forward,
    HubConfig,
    Lobby,
    Notice,
    Send,
    Session,
    SessionGone,
    Warn,
    validate_name,
)

__all__ = [
    "KICKED",
    "RESUMED_ELSEWHERE",
    "Action",
    "Close",
    "ConnId",
    "Forward",
    "Hub",
    "HubConfig",
    "Lobby",
    "Notice",
    "Send",
    "Session",
    "SessionGone",
    "Warn",
    "adopt",
    "hand_off",
    "prepend",
    "token_hash",
    "validate_name",
]
