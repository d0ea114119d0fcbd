"""Requests for protected names and administration (see README "Names, admin and audit")."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from ._requests import Id, Request

__all__ = ["AdminAudit", "AdminCloseLobby", "AdminKick", "AdminStats", "NameRegister"]


class NameRegister(Request):
    """``name.register {password}``: protect the current name; later hellos with it need the password."""

    TYPE: ClassVar[str] = "name.register"
    password: Annotated[str, StringConstraints(min_length=8, max_length=256)]


class AdminStats(Request):
    """``admin.stats`` → ``admin.stats {stats}`` (error statistics, breakers, health, counts)."""

    TYPE: ClassVar[str] = "admin.stats"


class AdminKick(Request):
    """``admin.kick {peer_id}``: end that peer's session; its lobby hears reason ``kicked``."""

    TYPE: ClassVar[str] = "admin.kick"
    peer_id: Id


class AdminCloseLobby(Request):
    """``admin.close_lobby {lobby_id}``: delete a lobby (persistent ones from the store too)."""

    TYPE: ClassVar[str] = "admin.close_lobby"
    lobby_id: Id


class AdminAudit(Request):
    """``admin.audit {limit?, before_id?}`` → ``admin.audit {entries}``, newest first."""

    TYPE: ClassVar[str] = "admin.audit"
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    before_id: Annotated[int, Field(ge=1)] | None = None
