"""Hub state and the decisions the hub returns (plain data, no I/O)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..auth._names import normalize_name, unsafe_char
from ..errors import ValidationError, VoiceBotError

__all__ = [
    "Action",
    "Admit",
    "Close",
    "ConnId",
    "Effect",
    "Forward",
    "Greeted",
    "HashPassword",
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
    "VerifyPassword",
    "Warn",
    "validate_name",
]

ConnId = int
"""A connection's id, chosen by the I/O layer."""

PeerKind = Literal["user", "bot"]

NAME_MAX = 32
_NAME_EXTRA = frozenset(" _-.")


def validate_name(raw: str) -> str:
    """Return the NFKC-normalised, trimmed name or raise ``name_invalid``: 1–32 chars of letters, digits, space and
    ``_ - .``; control, bidi, zero-width and other format characters are refused by name."""
    bad_char = unsafe_char(raw)
    if bad_char is not None:
        raise ValidationError(f"name: control or invisible character U+{ord(bad_char):04X} not allowed",
                              code="name_invalid", field="name")
    name = normalize_name(raw)
    if not name:
        raise ValidationError("name: must not be empty", code="name_invalid", field="name")
    if len(name) > NAME_MAX:
        raise ValidationError(f"name: at most {NAME_MAX} characters", code="name_invalid", field="name")
    bad = next((c for c in name if not (c.isalnum() or c in _NAME_EXTRA)), None)
    if bad is not None:
        raise ValidationError(
            f"name: character {bad!r} not allowed (letters, digits, space, _ - . only)",
            code="name_invalid", field="name",
        )
    return name


@attrs.frozen
class HubConfig:
    """Tunables of the hub core (the server fills them from settings)."""

    resume_grace: float = 30.0
    """Seconds a disconnected peer keeps its place (and its lobby) waiting for a resume."""
    resume_buffer: int = 256
    """Messages kept for a peer in grace; one more ends its session."""
    resume_buffer_bytes: int = 1_048_576
    """Bytes (encoded JSON) kept for a peer in grace; one more message beyond ends its session."""
    heartbeat_interval: float = 15.0
    """Told to clients in ``welcome``."""
    max_lobbies: int = 10_000
    """Lobbies that may exist at once; ``lobby.create`` beyond it fails with ``lobby_limit``."""
    empty_lobby_ttl: float = 300.0
    """Seconds an ephemeral lobby nobody has joined yet survives."""
    server: str = "voicebot"
    """Server name/version told to clients in ``welcome``."""
    ice_servers: tuple[dict[str, Any], ...] = ()
    """STUN/TURN servers told to clients in ``welcome.ice_servers`` (RTCIceServer dictionaries)."""
    shared_membership: bool = False
    """Cluster mode: lobby places are shared with other hubs, so a join asks the shell to :class:`Admit` it
    (take a place cluster-wide) before the hub counts it as a member."""
    announce_buffered: bool = False
    """Cluster mode: a message put in the resume buffer of a peer in grace is announced with a :class:`Buffered`
    action, so the shell copies it to shared storage at once (it must survive the loss of this process)."""


@attrs.define(eq=False)
class Session:
    """A peer's identity; outlives its WebSocket for ``resume_grace``."""

    peer_id: str
    name: str
    kind: PeerKind
    token_hash: str
    conn: ConnId | None
    lobby_id: str | None = None
    grace_deadline: float | None = None
    buffer: list[dict[str, Any]] = attrs.field(factory=list)
    """Messages kept for the peer while it is in grace or held (oldest first). A list, not a deque: every session
    has one and it is almost always empty (an empty deque takes 760 bytes, an empty list 56)."""
    buffer_bytes: int = 0
    """Encoded size of :attr:`buffer` (bounded by ``HubConfig.resume_buffer_bytes``)."""
    admin: bool = False
    session_id: str = ""
    """Internal id (a hash of a ``secrets`` token, never sent to clients); the store's key for this session."""
    home: str | None = None
    """Cluster mode: the id of the hub holding this peer's socket when that is another hub (a "remote member"
    mirrored here so lobby rules see it); messages for it become :class:`Forward` actions. None: this hub."""
    held: bool = False
    """Messages for this live session go to its buffer (bounded as in grace) until the shell releases them: its
    ``welcome`` is not out yet (see ``hold_delivery``)."""

    def peer_object(self) -> dict[str, Any]:
        """The protocol's ``peer`` object."""
        return {"peer_id": self.peer_id, "name": self.name, "kind": self.kind}


@attrs.define(eq=False)
class Lobby:
    """A room; members are peer ids in join order."""

    id: str
    name: str
    private: bool
    password_hash: str | None
    max_members: int
    persistent: bool = False
    created: float = 0.0
    """Wall-clock creation time (seconds since the epoch)."""
    members: dict[str, None] = attrs.field(factory=dict)
    empty_since: float | None = None
    """Trio time when the lobby last became empty (ephemeral lobbies expire from it)."""
    pending_offers: set[tuple[str, str]] = attrs.field(factory=set)
    """(from, to) pairs with an offer not yet answered, for glare detection."""

    def public(self) -> dict[str, Any]:
        """The protocol's ``lobby`` object."""
        return {
            "id": self.id, "name": self.name, "private": self.private,
            "has_password": self.password_hash is not None, "members": len(self.members),
            "max_members": self.max_members, "persistent": self.persistent,
        }


@attrs.frozen
class Send:
    """Deliver ``message`` to each live connection in ``conns`` (encode once, send many)."""

    conns: tuple[ConnId, ...]
    message: dict[str, Any]


@attrs.frozen
class Forward:
    """Cluster mode: deliver ``message`` to ``peer_ids``, members whose socket is on hub ``home``."""

    home: str
    peer_ids: tuple[str, ...]
    message: dict[str, Any]


@attrs.frozen
class Buffered:
    """Cluster mode (``announce_buffered``): messages were added to the resume buffers of ``peer_ids``, peers in
    grace here; the shell copies them to shared storage so a resume on another hub gets them if this one dies."""

    peer_ids: tuple[str, ...]


@attrs.frozen
class Close:
    """Close connection ``conn`` with a WebSocket close code and reason."""

    conn: ConnId
    code: int
    reason: str


@attrs.frozen
class Warn:
    """Report ``error`` to ``conn`` through the error handler (the request itself went through)."""

    conn: ConnId
    error: VoiceBotError


@attrs.frozen
class SessionGone:
    """A session ended for good (grace expired, buffer overflow, kicked); the I/O layer may forget it."""

    peer_id: str
    reason: str
    session_id: str = ""


@attrs.frozen
class Notice:
    """A domain event for audit/persistence/journal listeners (``event`` plus fields)."""

    event: str
    fields: dict[str, Any]


@attrs.frozen
class Greeted:
    """``conn`` is bound to session ``peer_id`` by a ``hello``; ``resumed`` is the hub's resume decision (an earlier
    session continues) — the shell records it (audit ``resume`` or ``connect``) and stops the hello deadline."""

    conn: ConnId
    peer_id: str
    name: str
    kind: PeerKind
    resumed: bool
    admin: bool


@attrs.frozen
class SaveSession:
    """Store session ``peer_id`` as it is now (its resume token and its persistent lobby, if any) before carrying
    out the actions after this one. Best effort: a failed write is counted and the request goes on (the session is
    stored again on its next change)."""

    peer_id: str


@attrs.frozen
class HashPassword:
    """The hub needs ``password`` hashed (slow by design, so never in the core): the shell hashes it and feeds the
    digest to ``Hub.password_hashed(op, digest, now)``, or calls ``Hub.abandon(op)`` when it cannot."""

    op: int
    conn: ConnId
    password: str


@attrs.frozen
class VerifyPassword:
    """The hub needs ``password`` checked against lobby ``lobby_id``'s ``password_hash``: the shell verifies it
    (slow, throttled) and feeds the verdict to ``Hub.password_checked(op, ok, now)``, or calls ``Hub.abandon(op)``
    when it refuses to check (e.g. throttled) — that refusal is the request's error."""

    op: int
    conn: ConnId
    lobby_id: str
    password_hash: str
    password: str


@attrs.frozen
class Admit:
    """Cluster mode (``HubConfig.shared_membership``): take a place for the session of ``conn`` in ``lobby_id``
    cluster-wide, then call ``Hub.admitted(op, now)``; when no place is left the shell's error is the request's
    (after ``Hub.abandon(op)``). A place taken for a join that then fails must be given back by the shell."""

    op: int
    conn: ConnId
    lobby_id: str


@attrs.frozen
class NewLobby:
    """What a :class:`Persist` writes for ``lobby.create {persistent: true}``: the lobby, not yet registered."""

    lobby: Lobby


@attrs.frozen
class Membership:
    """What a :class:`Persist` writes for a join into a persistent lobby: session ``peer_id`` is a member of
    ``lobby_id`` (its stored session names that lobby, so the membership survives a restart)."""

    peer_id: str
    lobby_id: str


@attrs.frozen
class Persist:
    """Write ``record`` durably before anything is acknowledged: the shell commits it, then calls
    ``Hub.persisted(op, now)`` and carries out the actions that returns (the acknowledgement). When the write fails
    the shell calls ``Hub.abandon(op)`` and reports its error: nothing of the request happened."""

    op: int
    conn: ConnId
    record: NewLobby | Membership


Effect = HashPassword | VerifyPassword | Admit | Persist
"""Decisions that need slow I/O and whose outcome comes back to the hub as an event (keyed by ``op``); only a
request's carrier (the shell awaiting it) can complete them."""

Action = Send | Close | Warn | SessionGone | Notice | Forward | Buffered | Greeted | SaveSession | Effect
