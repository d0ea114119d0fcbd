"""What a connection and the auth feature need from their server, and the server from a password hasher: small
Protocols, not whole classes.

:class:`~voicebot.server.Server` satisfies the two host Protocols; tests or other shells can pass anything that
does. Each member is read-only here (properties), so the server may keep plain attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .. import protocol

if TYPE_CHECKING:
    from ..cluster import Cluster
    from ..errors import ErrorHandler, RequestContext
    from ..hub import Action, Hub, Notice, SessionGone
    from ..metrics import HubCounters
    from ._connection import Connection
    from ._heartbeat import Heartbeats
    from ._persistence import Persistence
    from ._quotas import Quotas
    from ._server import Handler
    from ._settings import Settings

__all__ = ["AuthHost", "ConnectionHost", "PasswordHashing"]

_R = TypeVar("_R", bound=protocol.Request)


class PasswordHashing(Protocol):
    """What the server needs from a password hasher (:class:`voicebot.auth.Passwords` in production)."""

    async def hash(self, password: str, *, key: str | None = None) -> str:
        """Hash ``password`` (slow by design; off the event loop); ``key`` names the caller (its address key)
        for a per-caller budget."""
        ...

    async def verify(self, password_hash: str, password: str, *, key: str | None = None) -> bool:
        """True when ``password`` matches ``password_hash`` (``key`` as in :meth:`hash`)."""
        ...


class ConnectionHost(Protocol):
    """The server as one :class:`~voicebot.server.Connection` sees it: decode, dispatch, count, report, close."""

    @property
    def settings(self) -> Settings: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def errors(self) -> ErrorHandler: ...
    @property
    def counters(self) -> HubCounters: ...
    @property
    def close_timeout(self) -> float: ...
    @property
    def request_types(self) -> Mapping[str, type[protocol.Request]]: ...
    @property
    def quotas(self) -> Quotas: ...
    @property
    def heartbeats(self) -> Heartbeats: ...

    async def dispatch(self, conn: Connection, req: protocol.Request, rctx: RequestContext) -> None:
        """Run one validated request."""

    def state_message(self, conn_id: int) -> dict[str, Any]:
        """``lobby.state`` for the connection's session."""
        ...

    def connection_closed(self, conn: Connection) -> None:
        """Called once when the connection's socket is closed."""


class AuthHost(Protocol):
    """The server as :class:`~voicebot.server._auth.Auth` sees it: the hub, hashing, storage, its handlers."""

    @property
    def settings(self) -> Settings: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def notice_listeners(self) -> list[Callable[[Notice | SessionGone], None]]: ...
    @property
    def passwords(self) -> PasswordHashing: ...
    @property
    def persistence(self) -> Persistence: ...
    @property
    def cluster(self) -> Cluster | None: ...

    def apply(self, actions: list[Action], rctx: RequestContext | None = None) -> None:
        """Carry out the hub's decisions."""

    def statistics(self) -> dict[str, Any]:
        """``admin.stats`` figures."""
        ...

    def add_handler(self, model: type[_R], handler: Handler[_R], *, before_hello: bool = False,
                    concurrent: bool = False) -> None:
        """Serve requests of ``model.TYPE`` with ``handler``."""
