"""The Redis side of cluster mode: one coredis client, a circuit breaker and a deadline on every call.

Every call goes through :meth:`RedisLink.call`: the fault point ``cluster.redis`` (so fault plans can fail it),
then the ``cluster`` :class:`~voicebot.resilience.CircuitBreaker` (its ``call_timeout`` is the per-call
deadline), and any failure (coredis errors, possibly wrapped in exception groups by its anyio task groups,
timeouts, an open breaker) becomes the retryable :func:`unavailable` error. Cancellation is never mapped.

Keys (all under :data:`PREFIX`, each with a TTL that live hubs refresh, so a dead hub's state expires) are
described in :mod:`._scripts`; the stream ``inbox:{hub}`` carries messages for peers whose socket is on that hub
(:mod:`._inbox`), read on a connection of its own (:meth:`RedisLink.read`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import trio

from .. import faults
from ..errors import Category, Severity, VoiceBotError, split_passthrough
from ..resilience import BreakerConfig, BreakerRegistry, CircuitBreaker
from . import _inbox, _scripts

__all__ = ["PREFIX", "RedisLink", "unavailable"]

T = TypeVar("T")

#: Namespace of every key voicebot uses in the cluster's Redis database.
PREFIX = "voicebot:"

def unavailable(detail: str = "", retry_after: float | None = None) -> VoiceBotError:
    """The retryable ``cluster_unavailable`` error: the shared cluster state (Redis) cannot be reached."""
    message = "the cluster is unavailable (peers on other hubs cannot be reached); try again shortly"
    return VoiceBotError(f"{message}{': ' + detail if detail else ''}", code="cluster_unavailable",
                         category=Category.SYSTEM, severity=Severity.MEDIUM, retryable=True,
                         retry_after=retry_after if retry_after is not None else 1.0, subsystem="cluster")


class RedisLink:
    """The cluster's Redis connection (coredis 6 on anyio, inside :meth:`open`) behind the ``cluster`` breaker.

    ``call_timeout`` bounds each call (the breaker's deadline); coredis' own retries stay inside it. Reads of the
    inbox (:meth:`read`) go through a breaker of their own, ``cluster.inbox``: a reading connection that drops
    loses nothing (the next read continues where it stopped), so its failures must not make the whole hub
    unavailable; a Redis outage fails the other calls too.
    """

    def __init__(self, url: str, breakers: BreakerRegistry, *, call_timeout: float = 2.0) -> None:
        self.url = url
        self.call_timeout = call_timeout
        self.breaker: CircuitBreaker = breakers.get("cluster", BreakerConfig(
            failure_rate_threshold=50.0, minimum_number_of_calls=3, sliding_window_size=6,
            wait_duration_in_open_state=1.0, open_wait_multiplier=2.0, max_wait_duration_in_open_state=8.0,
            permitted_calls_in_half_open=1, call_timeout=call_timeout,
        ))
        self.read_breaker: CircuitBreaker = breakers.get("cluster.inbox", BreakerConfig(
            failure_rate_threshold=50.0, minimum_number_of_calls=5, sliding_window_size=10,
            wait_duration_in_open_state=0.5, open_wait_multiplier=2.0, max_wait_duration_in_open_state=1.0,
            permitted_calls_in_half_open=1, call_timeout=call_timeout,
        ))
        self.failures = 0
        self._client: Any = None
        self._reader: Any = None
        self._scripts: dict[str, Any] = {}

    async def open(self, stack: AsyncExitStack, reader_name: str = "voicebot-reader") -> None:
        """Create the clients inside ``stack`` (coredis needs its own async context; connections are lazy): one
        for every call, one whose connection (named ``reader_name`` on the server) only blocks in :meth:`read`."""
        import coredis  # noqa: PLC0415 - only cluster mode loads coredis

        timeout = self.call_timeout / 2
        client = coredis.Redis.from_url(self.url, decode_responses=True, stream_timeout=timeout,
                                        connect_timeout=timeout)
        self._client = await stack.enter_async_context(client)
        # A blocking read holds its connection until it returns: a client of its own keeps it off the shared
        # connection, and its stream timeout covers the block.
        reader = coredis.Redis.from_url(self.url, decode_responses=True, stream_timeout=self.call_timeout,
                                        connect_timeout=timeout, client_name=reader_name)
        self._reader = await stack.enter_async_context(reader)
        for name in ("admit", "refresh", "leave", "list", "tick", "save", "forget", "takeover", "stash", "drain",
                     "hand", "claim", "copy", "close", "end", "offers", "catalog", "botquota", "botfree", "create",
                     "finish"):
            self._scripts[name] = client.register_script(getattr(_scripts, name.upper()))
        self._scripts["send"] = client.register_script(_inbox.SEND)

    @property
    def client(self) -> Any:
        """The coredis client (for pub/sub, which runs outside :meth:`call`: it reconnects by itself)."""
        if self._client is None:
            raise RuntimeError("RedisLink.open() was not called")
        return self._client

    async def call(self, what: str, fn: Callable[[Any], Awaitable[T]], *,
                   breaker: CircuitBreaker | None = None) -> T:
        """Run ``fn(client)`` under the fault point, the breaker (``cluster`` unless given) and its deadline;
        failure: ``cluster_unavailable``."""
        client = self.client

        async def attempt() -> T:
            await faults.point("cluster.redis", op=what)  # inside the breaker: an injected failure counts
            return await fn(client)

        try:
            return await (breaker or self.breaker).call(attempt)
        except BaseException as exc:
            passthrough, failure = split_passthrough(exc)
            if passthrough is not None:
                raise
            if breaker is None:  # inbox reads count in ``Delivery.read_failures``
                self.failures += 1
            retry_after = getattr(failure, "retry_after", None)
            raise unavailable(retry_after=retry_after if isinstance(retry_after, float) else None) from exc

    @property
    def read_block(self) -> float:
        """Seconds one :meth:`read` waits for new entries (half the call deadline: the rest is for the reply)."""
        return self.call_timeout / 2

    async def read(self, after: dict[str, str], *, wait: bool = True) -> list[tuple[str, str, dict[str, str]]]:
        """Entries of the streams ``after`` maps to the id last read there, oldest first per stream, as
        ``(stream, id, fields)``; with ``wait``, waits up to :attr:`read_block` for some (``XREAD BLOCK``). On
        the reading connection, under the fault point, the ``cluster.inbox`` breaker and its deadline."""
        reader = self._reader
        if reader is None:
            raise RuntimeError("RedisLink.open() was not called")
        block = max(1, int(self.read_block * 1000)) if wait else None
        reply = await self.call("xread", lambda _client: reader.xread(after, count=_READ_COUNT, block=block),
                                breaker=self.read_breaker)
        return [(str(stream), str(entry.identifier), dict(entry.field_values))
                for stream, entries in (reply or {}).items() for entry in entries]

    async def script(self, name: str, *args: Any) -> Any:
        """Run one of the Lua scripts of :mod:`._scripts` (EVALSHA, loading it on first use); the key prefix
        goes first."""
        script = self._scripts[name]
        argv = [PREFIX, *(str(a) for a in args)]
        return await self.call(name, lambda _client: script(keys=[], args=argv))

    # -- key names ----------------------------------------------------------------------------------
    @staticmethod
    def hub_key(hub_id: str) -> str:
        """Liveness key of a hub."""
        return f"{PREFIX}hub:{hub_id}"

    @staticmethod
    def lobby_keys(lobby_id: str) -> tuple[str, str]:
        """(settings key, members key) of a lobby."""
        return f"{PREFIX}lobby:{lobby_id}", f"{PREFIX}members:{lobby_id}"

    @staticmethod
    def inbox(hub_id: str) -> str:
        """The stream of messages for peers on ``hub_id`` (``*``: the one every hub reads, for announcements such
        as a new registered name)."""
        return f"{PREFIX}inbox:{hub_id}"
    LOBBIES = f"{PREFIX}lobbies"
    SEQ = f"{PREFIX}seq"


#: Most entries one read takes (each an envelope of up to a publisher batch of messages).
_READ_COUNT = 64


def member_json(peer: dict[str, Any], hub_id: str) -> str:
    """The ``members:{id}`` value for a peer on ``hub_id``."""
    return json.dumps({"peer": peer, "hub": hub_id}, separators=(",", ":"))


def ttl_seconds(value: float) -> int:
    """A Redis EXPIRE argument (whole seconds, at least 1)."""
    return max(1, math.ceil(value))


async def sleep_or(event: trio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``event`` is set."""
    with trio.move_on_after(seconds):
        await event.wait()
