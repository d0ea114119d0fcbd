"""Protocol additions for bots and bot workers (pydantic request models, registered by ``install_bot_hub``).

Client → hub: ``bot.list``, ``bot.add {bot, lobby_id?, ...options}``, ``bot.remove {peer_id}``.
Worker → hub: ``worker.register {token, bots, capacity, name?}``, ``worker.started {job_id, peer_id}``,
``worker.failed {job_id, code, message, retryable}``, ``worker.stopped {job_id, reason}``.
Hub → worker (pushed, no ``reply_to``): ``worker.start {job}``, ``worker.stop {job_id}``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..protocol import Request
from ..protocol._requests import field_error

__all__ = [
    "MAX_OPTIONS_BYTES",
    "BotAdd",
    "BotDescriptor",
    "BotList",
    "BotRemove",
    "WorkerFailed",
    "WorkerRegister",
    "WorkerStarted",
    "WorkerStopped",
]

MAX_OPTIONS_BYTES = 20_000
"""Largest accepted JSON encoding (UTF-8 bytes) of a ``bot.add`` request's per-bot options (room for the
assistant's 4,000-character persona in any script plus its greeting)."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
BotName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class BotList(Request):
    """``bot.list`` → ``bot.list {bots: [{name, description, available}]}``."""

    TYPE: ClassVar[str] = "bot.list"


class BotAdd(Request):
    """``bot.add {bot, lobby_id?, ...options}`` → ``bot.added {peer_id, bot, lobby_id, job_id}``.

    Every field besides ``type``, ``id``, ``bot`` and ``lobby_id`` is a per-bot option (e.g. ``text`` for
    ``speaker``); at most :data:`MAX_OPTIONS_BYTES` of JSON. Without ``lobby_id`` the requester's lobby is used.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="allow")
    TYPE: ClassVar[str] = "bot.add"
    bot: BotName
    lobby_id: Id | None = None

    @model_validator(mode="after")
    def _options_size(self) -> BotAdd:
        if len(json.dumps(self.options, ensure_ascii=False).encode()) > MAX_OPTIONS_BYTES:
            raise field_error("options", f"larger than {MAX_OPTIONS_BYTES} bytes of JSON")
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The per-bot options (the extra fields)."""
        return {k: v for k, v in (self.model_extra or {}).items() if k != "type"}


class BotRemove(Request):
    """``bot.remove {peer_id}`` → ``bot.removed {peer_id}``; the bot leaves its lobby with reason ``left``."""

    TYPE: ClassVar[str] = "bot.remove"
    peer_id: Id


class BotDescriptor(BaseModel):
    """One bot a worker can run: ``{name, description}``."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", defer_build=True)
    name: BotName
    description: Annotated[str, StringConstraints(max_length=200)] = ""


class WorkerRegister(Request):
    """``worker.register {token, bots: [{name, description}], capacity, name?}`` → ``worker.registered
    {worker_id}``. Send after ``hello`` (kind ``bot``); the token is the hub's worker token."""

    TYPE: ClassVar[str] = "worker.register"
    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    bots: Annotated[list[BotDescriptor], Field(min_length=1, max_length=64)]
    capacity: Annotated[int, Field(ge=1, le=10_000)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "worker"


class WorkerStarted(Request):
    """``worker.started {job_id, peer_id}``: the job's bot has joined its lobby as ``peer_id`` (also sent
    again after a supervised restart, possibly with a new ``peer_id``)."""

    TYPE: ClassVar[str] = "worker.started"
    job_id: Id
    peer_id: Id


class WorkerFailed(Request):
    """``worker.failed {job_id, code, message, retryable}``: the job could not start (before
    ``worker.started``) or ended for good (restart budget spent)."""

    TYPE: ClassVar[str] = "worker.failed"
    job_id: Id
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "bot_failed"
    message: Annotated[str, StringConstraints(max_length=500)] = ""
    retryable: bool = True


class WorkerStopped(Request):
    """``worker.stopped {job_id, reason}``: the job ended (stopped, lobby gone, bot finished)."""

    TYPE: ClassVar[str] = "worker.stopped"
    job_id: Id
    reason: Annotated[str, StringConstraints(max_length=64)] = "stopped"


REQUESTS: tuple[type[Request], ...] = (
    BotList, BotAdd, BotRemove, WorkerRegister, WorkerStarted, WorkerFailed, WorkerStopped,
)
"""Every request model of this extension."""
