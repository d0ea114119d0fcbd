"""Authentication and administration on the hub: hello checks, protected names, admin requests, audit."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from .. import protocol
from ..auth import LoginThrottle, ThrottlePolicy, address_key, tokens_equal
from ..auth._names import RESERVED_NAMES, name_key, name_skeletons
from ..errors import AuthError, RequestContext, ValidationError
from ..hub import Action, Notice, SessionGone, validate_name

if TYPE_CHECKING:
    from ._connection import Connection
    from ._hosts import AuthHost

__all__ = ["Auth", "client_host"]


def client_host(remote: str) -> str:
    """``1.2.3.4:5678`` / ``[::1]:5678`` → the address without the port (throttles and quotas are per address)."""
    if remote.startswith("["):
        return remote[1:].split("]", 1)[0]
    return remote.rsplit(":", 1)[0] if remote.count(":") == 1 else remote


_host = client_host


class Auth:
    """Hello authentication (registered names, admin and worker tokens), name rules, lobby-password checks, and
    the ``name.*``/``admin.*`` requests.

    Three throttles, each counting attempts in flight (:meth:`LoginThrottle.begin`): registered-name passwords
    (per name and per address), bearer tokens (admin and worker tokens, per address only: a wrong token locks the
    address out of token logins, never out of ordinary ones) and lobby passwords (per lobby and per address).
    """

    def __init__(self, server: AuthHost, admin_token: str) -> None:
        self.server = server
        self.admin_token = admin_token
        s = server.settings
        policy = ThrottlePolicy(max_failures=s.login_failures_per_address, name_max_failures=s.login_failures_per_name)
        self.throttle = LoginThrottle(policy)
        """Passwords of registered names."""
        self.token_throttle = LoginThrottle(policy)
        """Admin and worker tokens in hello (per address)."""
        self.lobby_throttle = LoginThrottle(policy)
        """Lobby passwords (per lobby id and per address)."""
        self.bot_tokens: list[Callable[[], Iterable[str]]] = []
        """Sources of tokens that let a hello say ``kind: "bot"`` (the bot hub adds its worker tokens)."""
        self.reserved_sources: list[Callable[[], Iterable[str]]] = []
        """Sources of further reserved names (the bot hub adds the names of the bots workers offer)."""
        self._reserved_names = RESERVED_NAMES | {n.strip() for n in s.reserved_names.split(",") if n.strip()}
        self._live: dict[str, dict[str, str]] = {}  # skeleton -> {peer_id: name key} of sessions (live or in grace)
        self._peer_skeletons: dict[str, frozenset[str]] = {}
        server.notice_listeners.append(self._on_notice)
        server.add_handler(protocol.NameRegister, self._name_register)
        server.add_handler(protocol.AdminStats, self._admin_stats)
        server.add_handler(protocol.AdminKick, self._admin_kick)
        server.add_handler(protocol.AdminCloseLobby, self._admin_close_lobby)
        server.add_handler(protocol.AdminAudit, self._admin_audit)

    @functools.cached_property
    def _reserved(self) -> frozenset[str]:
        """Skeletons of the reserved names, computed at the first name check: skeletons need Unicode's
        confusables data (a few MiB), which a server that has not seen a name yet does not hold."""
        return frozenset(sk for n in self._reserved_names for sk in name_skeletons(n))

    # -- hello ----------------------------------------------------------------------------------------
    async def check_hello(self, conn: Connection, req: protocol.Hello, rctx: RequestContext) -> bool:
        """Authenticate a hello; returns whether it carries a valid admin token. Raises AuthError otherwise.

        A valid resume token proves the identity by itself; otherwise a registered name needs its password.
        ``kind: "bot"`` needs a worker token (or the admin token). Reserved names and look-alikes of registered
        or in-use names are refused. Failures are throttled and written to the audit log (never dropped).
        """
        addr = _host(conn.remote)
        admin = False
        if req.admin_token is not None:
            admin_token = req.admin_token
            await self._checked(self.token_throttle, None, addr, conn, rctx, field="admin_token",
                                check=lambda: _now(tokens_equal(admin_token, self.admin_token)))
            admin = True
        if req.kind == "bot" and not admin:
            worker_token = req.worker_token
            if worker_token is None:
                raise AuthError('kind "bot" needs a worker_token (or the admin token)', code="bot_not_authorized",
                                field="worker_token")
            valid = [t for source in self.bot_tokens for t in source() if t]
            await self._checked(self.token_throttle, None, addr, conn, rctx, field="worker_token",
                                check=lambda: _now(any(tokens_equal(worker_token, t) for t in valid)))
            conn.spare_worker()
        resuming = req.resume is not None and self.server.hub.find_resumable(req.resume) is not None
        if resuming:
            return admin
        name = validate_name(req.name)
        if req.kind == "user" and not admin:
            self.check_name_free(name, None)
        record = self.server.persistence.name_record(name)
        if record is None:
            return admin
        if req.password is None:
            raise AuthError(f"the name {name!r} is registered: send its password", code="auth_failed",
                            field="password")
        password = req.password
        await self._checked(self.throttle, name, addr, conn, rctx, field="password",
                            check=lambda: self.server.passwords.verify(record.password_hash, password,
                                                                       key=address_key(addr)))
        return admin

    def check_name_free(self, name: str, peer_id: str | None, *, registering: bool = False) -> None:
        """Refuse reserved names and look-alikes of registered or in-use names (``name_reserved``,
        ``name_confusable``); with ``registering``, also a name someone other than ``peer_id`` is using
        (``name_in_use``): only the live holder of a name may register it."""
        skeletons = name_skeletons(name)
        extra = {sk for source in self.reserved_sources for n in source() for sk in name_skeletons(n)}
        if skeletons & self._reserved or skeletons & extra:
            raise AuthError(f"the name {name!r} is reserved", code="name_reserved", field="name")
        key = name_key(name)
        registered = self.server.persistence.name_by_skeleton(skeletons)
        if registered is not None and registered.key != key:
            raise AuthError(f"the name {name!r} looks like the registered name {registered.name!r}",
                            code="name_confusable", field="name")
        holders = {pid: k for sk in skeletons for pid, k in self._live.get(sk, {}).items() if pid != peer_id}
        if any(k != key for k in holders.values()):
            raise AuthError(f"the name {name!r} looks like a name in use", code="name_confusable", field="name")
        if registering and holders:
            raise AuthError(f"the name {name!r} is in use by someone else", code="name_in_use", field="name")

    def _on_notice(self, action: Notice | SessionGone) -> None:
        if isinstance(action, SessionGone):
            for skeleton in self._peer_skeletons.pop(action.peer_id, frozenset()):
                holders = self._live.get(skeleton)
                if holders is not None:
                    holders.pop(action.peer_id, None)
                    if not holders:
                        del self._live[skeleton]
        elif action.event in ("session.started", "session.resumed"):  # resumed: e.g. restored after a restart
            peer_id, name = str(action.fields.get("peer_id")), str(action.fields.get("name", ""))
            session = self.server.hub.sessions.get(peer_id)
            if session is not None and session.kind == "user":
                skeletons = name_skeletons(name)
                self._peer_skeletons[peer_id] = skeletons
                for skeleton in skeletons:
                    self._live.setdefault(skeleton, {})[peer_id] = name_key(name)

    async def check_lobby_password(self, conn: Connection, lobby_id: str, password_hash: str, password: str,
                                   rctx: RequestContext) -> bool:
        """Verify a lobby password (the hub's ``VerifyPassword``), throttled per lobby and per address
        (``password_throttled`` when locked); False for a wrong one."""
        addr = _host(conn.remote)
        try:
            await self._checked(self.lobby_throttle, lobby_id, addr, conn, rctx, field="password",
                                check=lambda: self.server.passwords.verify(password_hash, password,
                                                                           key=address_key(addr)),
                                code="password_throttled", failed_event="lobby_password_failed")
        except AuthError as exc:
            if exc.code == "auth_failed":
                return False
            raise
        return True

    async def _checked(self, throttle: LoginThrottle, name: str | None, addr: str, conn: Connection,
                       rctx: RequestContext, *, field: str, check: Callable[[], Awaitable[bool]],
                       code: str = "login_throttled", failed_event: str = "auth_failed") -> None:
        """Reserve an attempt, run the (slow) check, record it; raise on a refusal or a failed check."""
        wait = throttle.begin(name, addr, trio.current_time())
        if wait is not None:
            await self.server.persistence.audit_security(
                "auth_locked", name=name, remote=conn.remote, correlation_id=rctx.correlation_id,
                retry_after=wait, field=field)
            if code == "password_throttled":
                raise AuthError(f"too many wrong passwords; try again in {wait:.0f} s", code="password_throttled",
                                field=field, retryable=True, retry_after=round(wait, 3))
            raise AuthError(f"too many failed logins; try again in {wait:.0f} s", code="login_throttled",
                            field=field, retryable=True, retry_after=round(wait, 3))
        ok: bool | None = None
        try:
            ok = await check()
        finally:
            throttle.finish(name, addr, trio.current_time(), success=ok)
        if not ok:
            await self.server.persistence.audit_security(
                failed_event, name=name, remote=conn.remote, correlation_id=rctx.correlation_id, field=field)
            raise AuthError(f"wrong {field.replace('_', ' ')}", code="auth_failed", field=field)

    # -- names ----------------------------------------------------------------------------------------
    async def _name_register(self, conn: Connection, req: protocol.NameRegister, rctx: RequestContext) -> None:
        session = self.server.hub.session_of(conn.id)
        assert session is not None
        if session.kind != "user":
            raise ValidationError("only users can register names", code="invalid_message")
        self.check_name_free(session.name, session.peer_id, registering=True)
        digest = await self.server.passwords.hash(req.password, key=address_key(_host(conn.remote)))
        self.check_name_free(session.name, session.peer_id, registering=True)  # nobody took it while hashing
        record = await self.server.persistence.register_name(session.name, digest)  # committed before the reply
        if self.server.cluster is not None:  # the other hubs protect it at hello from now on
            await self.server.cluster.announce_name(record.name)
        await self.server.persistence.audit_security("name_register", peer_id=session.peer_id, name=record.name,
                                                     remote=conn.remote, correlation_id=rctx.correlation_id)
        conn.send(_reply(req, {"type": "name.registered", "name": record.name}))

    # -- admin ----------------------------------------------------------------------------------------
    async def _require_admin(self, conn: Connection, req: protocol.Request, rctx: RequestContext,
                             **detail: Any) -> str:
        session = self.server.hub.session_of(conn.id)
        assert session is not None
        if not session.admin:
            await self.server.persistence.audit_security(
                "auth_failed", peer_id=session.peer_id, name=session.name, remote=conn.remote,
                correlation_id=rctx.correlation_id, action=req.TYPE)
            raise AuthError(f"{req.TYPE} needs admin rights (hello with admin_token)", code="forbidden")
        await self.server.persistence.audit_security(
            "admin_action", peer_id=session.peer_id, name=session.name, remote=conn.remote,
            correlation_id=rctx.correlation_id, action=req.TYPE, **detail)
        return session.peer_id

    async def _admin_stats(self, conn: Connection, req: protocol.AdminStats, rctx: RequestContext) -> None:
        await self._require_admin(conn, req, rctx)
        conn.send(_reply(req, {"type": "admin.stats", "stats": self.server.statistics()}))

    async def _admin_kick(self, conn: Connection, req: protocol.AdminKick, rctx: RequestContext) -> None:
        await self._require_admin(conn, req, rctx, target=req.peer_id)
        session, cluster = self.server.hub.sessions.get(req.peer_id), self.server.cluster
        if cluster is not None and (session is None or session.home is not None):
            await cluster.admin.kick(req.peer_id)  # its socket is on another hub (or was)
        elif cluster is not None:
            await cluster.admin.kick_here(req.peer_id)  # forgotten in Redis before anyone is told
        else:
            actions: list[Action] = self.server.hub.kick(req.peer_id, trio.current_time())
            self.server.apply(actions, rctx)
        conn.send(_reply(req, {"type": "admin.kicked", "peer_id": req.peer_id}))

    async def _admin_close_lobby(self, conn: Connection, req: protocol.AdminCloseLobby, rctx: RequestContext) -> None:
        await self._require_admin(conn, req, rctx, target=req.lobby_id)
        lobby = self.server.hub.lobbies.get(req.lobby_id)
        if self.server.cluster is not None:  # on every hub holding it
            if await self.server.cluster.admin.close_lobby(req.lobby_id):
                await self.server.persistence.require().delete_lobby(req.lobby_id)  # committed before the reply
        else:
            if lobby is not None and lobby.persistent:
                await self.server.persistence.require().delete_lobby(lobby.id)  # committed before the reply
            self.server.apply(self.server.hub.close_lobby(req.lobby_id), rctx)
        conn.send(_reply(req, {"type": "admin.lobby_closed", "lobby_id": req.lobby_id}))

    async def _admin_audit(self, conn: Connection, req: protocol.AdminAudit, rctx: RequestContext) -> None:
        await self._require_admin(conn, req, rctx)
        entries = await self.server.persistence.require().list_audit(req.limit, req.before_id)
        conn.send(_reply(req, {"type": "admin.audit", "entries": [
            {"id": e.id, "ts": e.ts, "event": e.event, "peer_id": e.peer_id, "name": e.name, "remote": e.remote,
             "correlation_id": e.correlation_id, "detail": e.detail} for e in entries]}))


def _reply(req: protocol.Request, message: dict[str, Any]) -> dict[str, Any]:
    if req.id is not None:
        message["reply_to"] = req.id
    return message


async def _now(value: bool) -> bool:
    return value
