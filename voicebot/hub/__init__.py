"""The hub core: lobbies, sessions, membership and routing, sans-IO (events in, actions out).

Requests that need slow I/O suspend at an :data:`Effect` (hash or verify a password, take a cluster-wide place,
write durably) and resume when the shell feeds the outcome back; the shell carries out every action in order.
"""

from ._bots import Tickets, bot_lobby, bot_ticket, check_bot_removal, check_bot_removal_by
from ._core import BOT_GONE_CLOSE, KICKED, RESUMED_ELSEWHERE, Hub, token_hash
from ._handoff import adopt, hand_off, prepend
from ._model import (
    Action,
    Admit,
    Close,
    ConnId,
    Effect,
    Forward,
    Greeted,
    HashPassword,
    HubConfig,
    Lobby,
    Membership,
    NewLobby,
    Notice,
    Persist,
    SaveSession,
    Send,
    Session,
    SessionGone,
    VerifyPassword,
    Warn,
    validate_name,
)

__all__ = [
    "BOT_GONE_CLOSE",
    "KICKED",
    "RESUMED_ELSEWHERE",
    "Action",
    "Admit",
    "Close",
    "ConnId",
    "Effect",
    "Forward",
    "Greeted",
    "HashPassword",
    "Hub",
    "HubConfig",
    "Lobby",
    "Membership",
    "NewLobby",
    "Notice",
    "Persist",
    "SaveSession",
    "Send",
    "Session",
    "SessionGone",
    "Tickets",
    "VerifyPassword",
    "Warn",
    "adopt",
    "bot_lobby",
    "bot_ticket",
    "check_bot_removal",
    "check_bot_removal_by",
    "hand_off",
    "prepend",
    "token_hash",
    "validate_name",
]
