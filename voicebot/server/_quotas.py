"""Per-address and per-peer quotas (sans-IO: the caller passes ``now``): connections, new connections per second,
lobbies created, bytes queued in outboxes.

Addresses are keyed like the login throttle (:func:`voicebot.auth.address_key`: IPv4 as is, IPv6 by /64), so one
client cannot escape a quota by rotating through its own /64. Memory is bounded by the number of addresses with
open connections or live lobbies, plus at most ``MAX_BUCKETS`` connection-rate buckets (full buckets, which
carry no information, are dropped first).
"""

from __future__ import annotations

import logging
import math

import attrs
import trio
import trio_websocket

from .. import protocol
from ..auth import address_key
from ..errors import RateLimitError, VoiceBotError
from ._backpressure import OutboxLedger
from ._ratelimit import TokenBucket

__all__ = ["MAX_BUCKETS", "QuotaSettings", "Quotas", "refuse_stream"]

log = logging.getLogger("voicebot.server")

#: Cap on remembered connection-rate buckets (addresses seen recently).
MAX_BUCKETS = 50_000


@attrs.frozen
class QuotaSettings:
    """Limits (0: unlimited) — see the server settings of the same names."""

    max_connections_per_address: int = 100
    connection_rate_per_address: float = 20.0
    connection_burst_per_address: int = 50
    max_lobbies_per_address: int = 50
    max_lobbies_per_peer: int = 10
    request_rate_per_address: float = 200.0
    request_burst_per_address: int = 400
    outbox_bytes_per_address: int = 8_388_608


class Quotas:
    """Counts what each address and peer holds and refuses what would exceed a quota."""

    def __init__(self, settings: QuotaSettings) -> None:
        self.settings = settings
        self.connections: dict[str, int] = {}
        """Open connections by address key."""
        self.refused_connections = 0
        """Connections refused by a quota since start."""
        self.spared_workers = 0
        """Connections that proved the worker token and stopped counting against their address since start."""
        self._buckets: dict[str, TokenBucket] = {}
        self._requests: dict[str, TokenBucket] = {}  # by address key, while the address has connections
        self._lobbies: dict[str, tuple[str, str]] = {}  # lobby id -> (address key, peer id)
        self._by_addr: dict[str, int] = {}
        self._by_peer: dict[str, int] = {}
        self.outboxes = OutboxLedger(settings.outbox_bytes_per_address)
        """Bytes queued in outboxes per address (back-pressure, see :mod:`voicebot.server._backpressure`)."""

    # -- connections --------------------------------------------------------------------------------
    def admit(self, host: str, now: float) -> RateLimitError | None:
        """Count a new connection from ``host`` (an address without port), or return why it is refused
        (``too_many_connections``, ``connection_rate``); a refused connection is not counted."""
        s = self.settings
        key = address_key(host)
        if s.max_connections_per_address and self.connections.get(key, 0) >= s.max_connections_per_address:
            self.refused_connections += 1
            return RateLimitError(f"too many connections from your address (at most {s.max_connections_per_address})",
                                  code="too_many_connections", retry_after=5.0)
        if s.connection_rate_per_address > 0:
            bucket = self._buckets.get(key)
            if bucket is None:
                self._trim_buckets(now)
                bucket = self._buckets[key] = TokenBucket(s.connection_rate_per_address,
                                                          s.connection_burst_per_address, now)
            wait = bucket.take(now)
            if wait is not None:
                self.refused_connections += 1
                return RateLimitError("too many new connections from your address; slow down",
                                      code="connection_rate", retry_after=round(wait, 3))
        self.connections[key] = self.connections.get(key, 0) + 1
        return None

    def release(self, host: str) -> None:
        """A connection admitted by :meth:`admit` ended."""
        key = address_key(host)
        left = self.connections.get(key, 0) - 1
        if left > 0:
            self.connections[key] = left
        else:
            self.connections.pop(key, None)
            self._requests.pop(key, None)

    def spare_worker(self, host: str) -> None:
        """A connection admitted by :meth:`admit` proved the worker token: it stops counting against its
        address's connections, and the new-connection token it took is given back, so workers behind one address
        (many bots, one NAT or proxy) are not refused. Call once per connection, and not :meth:`release` after."""
        key = address_key(host)
        self.release(host)
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.give_back()
        self.spared_workers += 1

    def take_request(self, remote: str, now: float) -> float | None:
        """One request from ``remote`` (``host:port``) against its address's shared budget
        (``request_rate_per_address``, burst ``request_burst_per_address``): None, or the seconds to wait."""
        s = self.settings
        if s.request_rate_per_address <= 0:
            return None
        key = address_key(_host(remote))
        bucket = self._requests.get(key)
        if bucket is None:
            bucket = self._requests[key] = TokenBucket(s.request_rate_per_address, s.request_burst_per_address, now)
        return bucket.take(now)

    def _trim_buckets(self, now: float) -> None:
        if len(self._buckets) >= MAX_BUCKETS:  # forget the older half (a forgotten address starts with a full burst)
            for key in list(self._buckets)[: MAX_BUCKETS // 2]:
                del self._buckets[key]

    # -- lobbies ------------------------------------------------------------------------------------
    def check_lobby(self, host: str, peer_id: str) -> None:
        """Raise ``lobby_quota`` when the address or the peer already has its maximum of live lobbies."""
        s = self.settings
        key = address_key(host)
        if s.max_lobbies_per_peer and self._by_peer.get(peer_id, 0) >= s.max_lobbies_per_peer:
            raise self.lobby_refusal("peer")
        if s.max_lobbies_per_address and self._by_addr.get(key, 0) >= s.max_lobbies_per_address:
            raise self.lobby_refusal("address")

    def lobby_refusal(self, per: str) -> RateLimitError:
        """The ``lobby_quota`` error for the full quota ``per`` (``peer`` or ``address``), also raised when the
        cluster-wide count refuses a lobby (cluster mode)."""
        s = self.settings
        if per == "peer":
            return RateLimitError(f"you already created {s.max_lobbies_per_peer} lobbies that still exist",
                                  code="lobby_quota", retry_after=60.0, context={"per": "peer"})
        return RateLimitError(f"your address already created {s.max_lobbies_per_address} lobbies that still exist",
                              code="lobby_quota", retry_after=60.0, context={"per": "address"})

    def lobby_created(self, lobby_id: str, host: str, peer_id: str) -> None:
        """Count a lobby against its creator's address and peer until :meth:`lobby_deleted`."""
        key = address_key(host)
        self._lobbies[lobby_id] = (key, peer_id)
        self._by_addr[key] = self._by_addr.get(key, 0) + 1
        self._by_peer[peer_id] = self._by_peer.get(peer_id, 0) + 1

    def lobby_deleted(self, lobby_id: str) -> None:
        """A lobby is gone: its creator may create another."""
        owner = self._lobbies.pop(lobby_id, None)
        if owner is None:
            return
        for table, key in ((self._by_addr, owner[0]), (self._by_peer, owner[1])):
            left = table.get(key, 0) - 1
            if left > 0:
                table[key] = left
            else:
                table.pop(key, None)


def _host(remote: str) -> str:
    if remote.startswith("["):
        return remote[1:].split("]", 1)[0]
    return remote.rsplit(":", 1)[0] if remote.count(":") == 1 else remote


async def refuse_stream(stream: trio.abc.Stream, refusal: VoiceBotError, timeout: float) -> None:
    """Answer the upgrade request on ``stream`` with ``429 Too Many Requests`` (``Retry-After`` and a JSON body with
    the error code) within ``timeout`` seconds; the stream is closed either way."""
    body = protocol.encode({"type": "error", "code": refusal.code, "message": refusal.message,
                            "retry_after": refusal.retry_after}).encode()
    try:
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                request = await trio_websocket.wrap_server_stream(nursery, stream, max_message_size=1024)
                retry = str(max(1, math.ceil(refusal.retry_after or 1)))
                await request.reject(429, extra_headers=[(b"Retry-After", retry.encode())], body=body)
                nursery.cancel_scope.cancel()
    except Exception as exc:  # a broken socket while refusing: nothing more to do for this client
        log.debug("refusing %s failed: %r", refusal.code, exc)
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
