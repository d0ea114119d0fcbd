"""Authentication and administration on the hub: hello checks, protected names, admin requests, audit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .. import protocol
from ..auth import LoginThrottle, tokens_equal
from ..errors import AuthError, RequestContext, ValidationError
from ..hub import Action, validate_name

if TYPE_CHECKING:
    from ._connection import Connection
    from ._hosts import AuthHost

__all__ = ["Auth"]


def _host(remote: str) -> str:
    """``1.2.3.4:5678`` / ``[::1]:5678`` → the address without the port (throttling is per address)."""
    if remote.startswith("["):
        return remote[1:].split("]", 1)[0]
    return remote.rsplit(":", 1)[0] if remote.count(":") == 1 else remote


class Auth:
    """Hello authentication (registered names, admin token) and the ``name.*``/``admin.*`` requests."""

    def __init__(self, server: AuthHost, admin_token: str) -> None:
        self.server = server
        self.admin_token = admin_token
        self.throttle = LoginThrottle()
        server.add_handler(protocol.NameRegister, self._name_register)
        server.add_handler(protocol.AdminStats, self._admin_stats)
        server.add_handler(protocol.AdminKick, self._admin_kick)
        server.add_handler(protocol.AdminCloseLobby, self._admin_close_lobby)
        server.add_handler(protocol.AdminAudit, self._admin_audit)

    # -- hello ----------------------------------------------------------------------------------------
    async def check_hello(self, conn: Connection, req: protocol.Hello, rctx: RequestContext) -> bool:
        """Authenticate a hello; returns whether it carries a valid admin token. Raises AuthError otherwise.

        A valid resume token proves the identity by itself; otherwise a registered name needs its password.
        Failures are throttled per name and per address and written to the audit log.
        """
        persistence = self.server.persistence
        now = trio.current_time()
        addr = _host(conn.remote)
        admin = False
        if req.admin_token is not None:
            self._throttled(None, addr, now, conn, rctx)
            if not tokens_equal(req.admin_token, self.admin_token):
                self._failed(None, addr, now, conn, rctx, field="admin_token")
                raise AuthError("invalid admin token", code="auth_failed", field="admin_token")
            admin = True
        resuming = req.resume is not None and self.server.hub.find_resumable(req.resume) is not None
        if resuming:
            return admin
        name = validate_name(req.name)
        record = persistence.name_record(name)
        if record is None:
            return admin
        self._throttled(name, addr, now, conn, rctx)
        if req.password is None:
            raise AuthError(f"the name {name!r} is registered: send its password", code="auth_failed",
                            field="password")
        if not await self.server.passwords.verify(record.password_hash, req.password):
            self._failed(name, addr, now, conn, rctx, field="password")
            raise AuthError(f"wrong password for the name {name!r}", code="auth_failed", field="password")
        self.throttle.record_success(name, addr, trio.current_time())
        return admin

    def _throttled(self, name: str | None, addr: str, now: float, conn: Connection, rctx: RequestContext) -> None:
        wait = self.throttle.check(name, addr, now)
        if wait is not None:
            self.server.persistence.audit("auth_locked", name=name, remote=conn.remote,
                                          correlation_id=rctx.correlation_id, retry_after=wait)
            raise AuthError(f"too many failed logins; try again in {wait:.0f} s", code="login_throttled",
                            retryable=True, retry_after=round(wait, 3))

    def _failed(self, name: str | None, addr: str, now: float, conn: Connection, rctx: RequestContext, *,
                field: str) -> None:
        self.throttle.record_failure(name, addr, now)
        self.server.persistence.audit("auth_failed", name=name, remote=conn.remote,
                                      correlation_id=rctx.correlation_id, field=field)

    # -- names ----------------------------------------------------------------------------------------
    async def _name_register(self, conn: Connection, req: protocol.NameRegister, rctx: RequestContext) -> None:
        session = self.server.hub.session_of(conn.id)
        assert session is not None
        if session.kind != "user":
            raise ValidationError("only users can register names", code="invalid_message")
        digest = await self.server.passwords.hash(req.password)
        record = await self.server.persistence.register_name(session.name, digest)  # committed before the reply
        self.server.persistence.audit("name_register", peer_id=session.peer_id, name=record.name,
                                      remote=conn.remote, correlation_id=rctx.correlation_id)
        conn.send(_reply(req, {"type": "name.registered", "name": record.name}))

    # -- admin ----------------------------------------------------------------------------------------
    def _require_admin(self, conn: Connection, req: protocol.Request, rctx: RequestContext, **detail: Any) -> str:
        session = self.server.hub.session_of(conn.id)
        assert session is not None
        if not session.admin:
            self.server.persistence.audit("auth_failed", peer_id=session.peer_id, name=session.name,
                                          remote=conn.remote, correlation_id=rctx.correlation_id, action=req.TYPE)
            raise AuthError(f"{req.TYPE} needs admin rights (hello with admin_token)", code="forbidden")
        self.server.persistence.audit("admin_action", peer_id=session.peer_id, name=session.name, remote=conn.remote,
                                      correlation_id=rctx.correlation_id, action=req.TYPE, **detail)
        return session.peer_id

    async def _admin_stats(self, conn: Connection, req: protocol.AdminStats, rctx: RequestContext) -> None:
        self._require_admin(conn, req, rctx)
        conn.send(_reply(req, {"type": "admin.stats", "stats": self.server.statistics()}))

    async def _admin_kick(self, conn: Connection, req: protocol.AdminKick, rctx: RequestContext) -> None:
        self._require_admin(conn, req, rctx, target=req.peer_id)
        actions: list[Action] = self.server.hub.kick(req.peer_id, trio.current_time())
        self.server.apply(actions, rctx)
        conn.send(_reply(req, {"type": "admin.kicked", "peer_id": req.peer_id}))

    async def _admin_close_lobby(self, conn: Connection, req: protocol.AdminCloseLobby, rctx: RequestContext) -> None:
        self._require_admin(conn, req, rctx, target=req.lobby_id)
        lobby = self.server.hub.lobbies.get(req.lobby_id)
        if lobby is not None and lobby.persistent:
            await self.server.persistence.require().delete_lobby(lobby.id)  # committed before the reply
        self.server.apply(self.server.hub.close_lobby(req.lobby_id), rctx)
        conn.send(_reply(req, {"type": "admin.lobby_closed", "lobby_id": req.lobby_id}))

    async def _admin_audit(self, conn: Connection, req: protocol.AdminAudit, rctx: RequestContext) -> None:
        self._require_admin(conn, req, rctx)
        entries = await self.server.persistence.require().list_audit(req.limit, req.before_id)
        conn.send(_reply(req, {"type": "admin.audit", "entries": [
            {"id": e.id, "ts": e.ts, "event": e.event, "peer_id": e.peer_id, "name": e.name, "remote": e.remote,
             "correlation_id": e.correlation_id, "detail": e.detail} for e in entries]}))


def _reply(req: protocol.Request, message: dict[str, Any]) -> dict[str, Any]:
    if req.id is not None:
        message["reply_to"] = req.id
    return message
