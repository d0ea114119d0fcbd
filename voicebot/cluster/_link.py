"""The Redis side of cluster mode: one coredis client, a circuit breaker and a deadline on every call.

Every call goes through :meth:`RedisLink.call`: the fault point ``cluster.redis`` (so fault plans can fail it),
then the ``cluster`` :class:`~voicebot.resilience.CircuitBreaker` (its ``call_timeout`` is the per-call
deadline), and any failure (coredis errors, possibly wrapped in exception groups by its anyio task groups,
timeouts, an open breaker) becomes the retryable :func:`unavailable` error. Cancellation is never mapped.

Keys (all under :data:`PREFIX`), each with a TTL that live hubs refresh, so a dead hub's state expires:

- ``hub:{id}``: a hub is alive while this key exists (``hub_ttl``).
- ``lobby:{id}``: the lobby's public settings and password hash as JSON (``lobby_ttl``).
- ``members:{id}``: hash peer id → JSON ``{peer, hub, seq}``; ``seq`` (from ``seq``) orders members by join.
- ``lobbies``: sorted set of lobby ids, all scored 0 so they sort by id (``lobby.list`` pages by id).
- channel ``to:{hub}``: messages for peers whose socket is on that hub.
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

__all__ = ["PREFIX", "RedisLink", "unavailable"]

T = TypeVar("T")

#: Namespace of every key and channel voicebot uses in the cluster's Redis database.
PREFIX = "voicebot:"

# Members whose hub key expired are pruned before counting or listing: a dead hub's peers leave by themselves.
_PRUNE = """
local function live_members(members_key, hub_prefix)
  local all = redis.call('HGETALL', members_key)
  local out = {}
  for i = 1, #all, 2 do
    local member = cjson.decode(all[i + 1])
    if redis.call('EXISTS', hub_prefix .. member.hub) == 1 then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    else
      redis.call('HDEL', members_key, all[i])
    end
  end
  return out
end
"""

# KEYS: lobby, members, seq. ARGV: peer id, member JSON (without seq), hub key prefix, lobby TTL.
# Atomic check-and-add: no interleaving of two hubs' joins can pass max_members.
_ADMIT = _PRUNE + """
local meta = redis.call('GET', KEYS[1])
if not meta then return {'missing'} end
local max_members = tonumber(cjson.decode(meta).max_members)
local live = live_members(KEYS[2], ARGV[3])
local count = 0
for i = 1, #live, 2 do
  if live[i] ~= ARGV[1] then count = count + 1 end
end
if count >= max_members then return {'full', meta} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  local member = cjson.decode(ARGV[2])
  member.seq = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(member))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local result = {'ok', meta}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all do result[#result + 1] = all[i] end
return result
"""

# KEYS: lobby, members, lobbies, seq. ARGV: meta JSON, lobby id, created, lobby TTL, hub key prefix, then pairs
# of (peer id, member JSON) for this hub's members. Re-asserts this hub's lobby and members (after an outage
# or a Redis restart) and returns the lobby's live members.
_REFRESH = _PRUNE + """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[2])
for i = 6, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then
    local member = cjson.decode(ARGV[i + 1])
    member.seq = redis.call('INCR', KEYS[4])
    redis.call('HSET', KEYS[2], ARGV[i], cjson.encode(member))
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return live_members(KEYS[2], ARGV[5])
"""

# KEYS: lobby, members, lobbies. ARGV: peer id, lobby id. Removes a member; an ephemeral lobby left empty goes.
_LEAVE = """
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HLEN', KEYS[2]) == 0 then
  local meta = redis.call('GET', KEYS[1])
  if meta and not cjson.decode(meta).persistent then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[3], ARGV[2])
  end
end
return 1
"""

# KEYS: lobbies (all scores 0: ordered by id). ARGV: key prefix, cursor ('' for the first page), limit. Up to
# limit + 1 public lobbies after the cursor as (id, meta JSON, live member count); expired ids are dropped and
# dead hubs' members pruned on the way.
_LIST = _PRUNE + """
local out = {}
local start = ARGV[2] == '' and '-' or '(' .. ARGV[2]
local want = tonumber(ARGV[3]) + 1
local found = 0
while found < want do
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, 100)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    start = '(' .. id
    local meta = redis.call('GET', ARGV[1] .. 'lobby:' .. id)
    if not meta then
      redis.call('ZREM', KEYS[1], id)
    elseif not cjson.decode(meta).private then
      found = found + 1
      out[#out + 1] = id
      out[#out + 1] = meta
      out[#out + 1] = #live_members(ARGV[1] .. 'members:' .. id, ARGV[1] .. 'hub:') / 2
      if found >= want then break end
    end
  end
end
return out
"""


def unavailable(detail: str = "", retry_after: float | None = None) -> VoiceBotError:
    """The retryable ``cluster_unavailable`` error: the shared cluster state (Redis) cannot be reached."""
    message = "the cluster is unavailable (peers on other hubs cannot be reached); try again shortly"
    return VoiceBotError(f"{message}{': ' + detail if detail else ''}", code="cluster_unavailable",
                         category=Category.SYSTEM, severity=Severity.MEDIUM, retryable=True,
                         retry_after=retry_after if retry_after is not None else 1.0, subsystem="cluster")


class RedisLink:
    """The cluster's Redis connection (coredis 6 on anyio, inside :meth:`open`) behind the ``cluster`` breaker.

    ``call_timeout`` bounds each call (the breaker's deadline); coredis' own retries stay inside it.
    """

    def __init__(self, url: str, breakers: BreakerRegistry, *, call_timeout: float = 2.0) -> None:
        self.url = url
        self.call_timeout = call_timeout
        self.breaker: CircuitBreaker = breakers.get("cluster", BreakerConfig(
            failure_rate_threshold=50.0, minimum_number_of_calls=3, sliding_window_size=6,
            wait_duration_in_open_state=1.0, open_wait_multiplier=2.0, max_wait_duration_in_open_state=8.0,
            permitted_calls_in_half_open=1, call_timeout=call_timeout,
        ))
        self.failures = 0
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    async def open(self, stack: AsyncExitStack) -> None:
        """Create the client inside ``stack`` (coredis needs its own async context; connections are lazy)."""
        import coredis  # noqa: PLC0415 - only cluster mode loads coredis

        timeout = self.call_timeout / 2
        client = coredis.Redis.from_url(self.url, decode_responses=True, stream_timeout=timeout,
                                        connect_timeout=timeout)
        self._client = await stack.enter_async_context(client)
        for name, source in (("admit", _ADMIT), ("refresh", _REFRESH), ("leave", _LEAVE), ("list", _LIST)):
            self._scripts[name] = client.register_script(source)

    @property
    def client(self) -> Any:
        """The coredis client (for pub/sub, which runs outside :meth:`call`: it reconnects by itself)."""
        if self._client is None:
            raise RuntimeError("RedisLink.open() was not called")
        return self._client

    async def call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(client)`` under the fault point, the breaker and its deadline; failure: ``cluster_unavailable``."""
        client = self.client

        async def attempt() -> T:
            await faults.point("cluster.redis", op=what)  # inside the breaker: an injected failure counts
            return await fn(client)

        try:
            return await self.breaker.call(attempt)
        except BaseException as exc:
            passthrough, failure = split_passthrough(exc)
            if passthrough is not None:
                raise
            self.failures += 1
            retry_after = getattr(failure, "retry_after", None)
            raise unavailable(retry_after=retry_after if isinstance(retry_after, float) else None) from exc

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of the Lua scripts above (EVALSHA, loading it on first use)."""
        script = self._scripts[name]
        return await self.call(name, lambda _client: script(keys=keys, args=[str(a) for a in args]))

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
    def channel(hub_id: str) -> str:
        """The pub/sub channel of messages for peers on ``hub_id``."""
        return f"{PREFIX}to:{hub_id}"

    LOBBIES = f"{PREFIX}lobbies"
    SEQ = f"{PREFIX}seq"


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
