"""Client → server request models (protocol v1), validated with pydantic.

Validation is strict (no coercion: ``"16"`` is not an integer) and ignores unknown fields so newer clients
can talk to older servers. Every failure becomes a :class:`voicebot.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "LOBBY_LIST_LIMIT",
    "LOBBY_LIST_MAX",
    "REQUEST_TYPES",
    "BotStatus",
    "Candidate",
    "Caption",
    "Chat",
    "Hello",
    "LobbyCreate",
    "LobbyJoin",
    "LobbyLeave",
    "LobbyList",
    "Ping",
    "Request",
    "Signal",
]

MAX_SDP_BYTES = 32 * 1024
"""Largest accepted SDP (bytes, UTF-8)."""

FIELD_ERROR = "voicebot_field"
"""Error type of :func:`field_error`: its context carries ``field`` and ``text`` as data, so the codec reports
the offending field without reading pydantic's message text."""


def field_error(field: str, text: str) -> PydanticCustomError:
    """A validation failure that cross-field validators raise for one named ``field`` (``text`` says why)."""
    return PydanticCustomError(FIELD_ERROR, "{field}: {text}", {"field": field, "text": text})


RequestId = str | int
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Request(BaseModel):
    """Base of every client request: carries the optional ``id`` echoed back as ``reply_to``."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", defer_build=True)
    TYPE: ClassVar[str] = ""

    id: RequestId | None = None


class Hello(Request):
    """``hello {name, resume?, protocol?: 1}``: must be the first message on a connection."""

    TYPE: ClassVar[str] = "hello"
    name: Annotated[str, StringConstraints(max_length=256)]
    """Display name (rules checked by the hub: 1–32 chars after trimming, letters/digits/space/_-.)."""
    resume: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    protocol: Literal[1] = 1
    kind: Literal["user", "bot"] = "user"
    password: Secret | None = None
    admin_token: Secret | None = None
    worker_token: Secret | None = None
    """Needed (or ``admin_token``) with ``kind: "bot"``: the token of the workers that run bots."""


class LobbyCreate(Request):
    """``lobby.create {name, private?, password?, max_members?, persistent?}``."""

    TYPE: ClassVar[str] = "lobby.create"
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    private: bool = False
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    max_members: Annotated[int, Field(ge=2, le=64)] = 16
    persistent: bool = False


LOBBY_LIST_LIMIT = 50
"""Lobbies per ``lobby.list`` page when the request gives no ``limit``."""
LOBBY_LIST_MAX = 100
"""Largest ``lobby.list`` page (``limit`` above it is ``invalid_message``): a short request never buys a huge reply."""


class LobbyList(Request):
    """``lobby.list {cursor?, limit?}``: one page of public lobbies ordered by id; the reply's ``next_cursor``
    (null on the last page) fetches the next one. Lobbies created or deleted meanwhile never shift other pages."""

    TYPE: ClassVar[str] = "lobby.list"
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    limit: Annotated[int, Field(ge=1, le=LOBBY_LIST_MAX)] = LOBBY_LIST_LIMIT


class LobbyJoin(Request):
    """``lobby.join {lobby_id, password?}``."""

    TYPE: ClassVar[str] = "lobby.join"
    lobby_id: Id
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    ticket: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """A join ticket the hub granted (bots admitted by a member), instead of the password."""


class LobbyLeave(Request):
    """``lobby.leave``."""

    TYPE: ClassVar[str] = "lobby.leave"


class Candidate(BaseModel):
    """An ICE candidate as browsers produce it (``RTCIceCandidateInit``)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", defer_build=True)
    candidate: Annotated[str, StringConstraints(max_length=2048)]
    sdpMid: Annotated[str, StringConstraints(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=1024)] | None = None


class Signal(Request):
    """``signal {to, kind, sdp?, candidate?}``: relayed to ``to`` inside the sender's lobby.

    Per kind: ``offer``/``answer`` need ``sdp`` (at most :data:`MAX_SDP_BYTES`, starting ``v=0``) and no
    ``candidate``; ``candidate`` needs ``candidate`` (an object with bounded fields, or null) and no ``sdp``;
    ``bye`` carries neither. Unknown fields are ignored and never relayed."""

    TYPE: ClassVar[str] = "signal"
    to: Id
    kind: Literal["offer", "answer", "candidate", "bye"]
    sdp: str | None = None
    candidate: Candidate | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("kind")
        sdp = data.get("sdp")
        if kind in ("offer", "answer"):
            if sdp is None:
                raise field_error("sdp", f"required for kind {kind!r}")
            if isinstance(sdp, str):
                if len(sdp.encode()) > MAX_SDP_BYTES:
                    raise field_error("sdp", f"longer than {MAX_SDP_BYTES} bytes")
                if not sdp.startswith("v=0"):
                    raise field_error("sdp", "must start with 'v=0'")
        if kind == "candidate" and "candidate" not in data:
            raise field_error("candidate", "required for kind 'candidate' (null means end of candidates)")
        # Each kind carries only its own payload: nothing big rides along on a candidate or a bye.
        if kind in ("candidate", "bye") and sdp is not None:
            raise field_error("sdp", f"not allowed for kind {kind!r} (only offer and answer carry an sdp)")
        if kind in ("offer", "answer", "bye") and data.get("candidate") is not None:
            raise field_error("candidate", f"not allowed for kind {kind!r} (only kind 'candidate' carries one)")
        return data


class Chat(Request):
    """``chat {text}``: broadcast to every member of the sender's lobby, sender included."""

    TYPE: ClassVar[str] = "chat"
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]

    @model_validator(mode="after")
    def _not_blank(self) -> Chat:
        if not self.text.strip():
            raise field_error("text", "must not be blank")
        return self


class Caption(Request):
    """``caption {text (1–2000), role: "user"|"assistant", about?: peer_id, final: bool, turn_id?}``: a line of
    live captions, broadcast to every member of the sender's lobby as ``caption {lobby_id, from, name, role, about,
    text, final, turn_id, ts}``. Only peers of kind ``bot`` may send ``role: "assistant"`` or ``about`` someone
    other than themselves (``forbidden`` otherwise)."""

    TYPE: ClassVar[str] = "caption"
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    role: Literal["user", "assistant"]
    about: Id | None = None
    final: bool
    turn_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _not_blank(self) -> Caption:
        if not self.text.strip():
            raise field_error("text", "must not be blank")
        return self


class BotStatus(Request):
    """``bot.status {state: "listening"|"thinking"|"speaking"|"degraded", detail?}`` from a bot → every member of
    its lobby gets ``bot.status {lobby_id, peer_id, state, detail, ts}``; from a non-bot: ``forbidden``."""

    TYPE: ClassVar[str] = "bot.status"
    state: Literal["listening", "thinking", "speaking", "degraded"]
    detail: Annotated[str, StringConstraints(max_length=500)] | None = None


class Ping(Request):
    """``ping`` → ``pong``."""

    TYPE: ClassVar[str] = "ping"


#: Every request type the core protocol knows, by wire name. A server copies it and adds its extensions'
#: types (``Server.add_handler``), so what one server decodes never depends on another in the same process.
REQUEST_TYPES: dict[str, type[Request]] = {
    model.TYPE: model for model in (Hello, LobbyCreate, LobbyList, LobbyJoin, LobbyLeave, Signal, Chat, Ping)
}
REQUEST_TYPES.update({Caption.TYPE: Caption, BotStatus.TYPE: BotStatus})
