"""The Lua scripts of cluster mode's lobby lifetimes: lobby quotas held cluster-wide, and lobbies that ended.

Keys (under the prefix): ``lqa:{address key}`` and ``lqp:{peer}``: hash lobby id → ``1`` of the lobbies an
address and a peer created (``--max-lobbies-per-address``, ``--max-lobbies-per-peer``), each with the lobby TTL,
refreshed by every heartbeat that re-asserts one of those lobbies. An entry counts while its lobby lives; entries
of lobbies that ended are pruned whenever a quota is counted, so a lost hub's lobbies stop counting when they end.

A lobby's stored meta names its creator (``owner``: [address key, peer id]) and the hub that answers for it
(``hub``: the one that created it, or the one it was handed to when that hub was lost). An ephemeral lobby ends
when its last live member leaves, when its creating hub drops it unjoined (``--empty-lobby-ttl``), when every
member it had was lost (their hub gone, their sessions no longer resumable), or when it has no live member and
the hub answering for it is gone. An ended lobby leaves ``lobbies``
(``lobby.list``) at once, gives its quota places back, and is tombstoned (``closed:{id}`` → its creation time)
for the lobby TTL so that no hub re-asserts it from a stale mirror.

``hublobs:{hub}`` (sorted set: lobby id → when to look at it next, Redis time in seconds) indexes the ephemeral
lobbies each hub is answerable for (the ``hub`` of their meta), and ``lobhubs`` is the set of hubs with such an
index. Every hub's heartbeat sweeps the indexes of lost hubs (:data:`SWEEP_FN`), so a lost hub's lobby ends
within a heartbeat of its hub key expiring without anyone counting a quota or listing lobbies: one with no live
member ends; one with a live member on a live hub is handed to that hub (its meta names it; it ends when that
hub's last member leaves); one whose only live members are resumable sessions of lost hubs is looked at again a
second later.

These functions need ``live_members`` (``_PRUNE`` of :mod:`._scripts`) defined before them.
"""

from __future__ import annotations

__all__ = ["CREATE", "FINISH", "LIFETIME_FN", "LIST", "SWEEP_FN"]

LIFETIME_FN = """
local function quota_keys(prefix, owner)
  return prefix .. 'lqa:' .. owner[1], prefix .. 'lqp:' .. owner[2]
end
-- ``hub`` answers for the lobby: a lost hub's lobbies are swept (SWEEP_FN) from ``at`` (Redis time, seconds) on.
local function index_lobby(prefix, hub, lobby_id, ttl, at)
  local index = prefix .. 'hublobs:' .. hub
  redis.call('ZADD', index, at, lobby_id)
  redis.call('EXPIRE', index, ttl)
  redis.call('SADD', prefix .. 'lobhubs', hub)
  redis.call('EXPIRE', prefix .. 'lobhubs', ttl)
end
local function own_lobby(prefix, lobby_id, owner, ttl)
  local a, p = quota_keys(prefix, owner)
  redis.call('HSET', a, lobby_id, '1')
  redis.call('EXPIRE', a, ttl)
  redis.call('HSET', p, lobby_id, '1')
  redis.call('EXPIRE', p, ttl)
end
-- Whether the lobby of ``meta`` (decoded) ended: an admin's tombstone ('1') closes every lobby of that id, that
-- of a lobby that ended only the same lobby (its creation time), not a new one given the same id.
local function tombstoned(prefix, lobby_id, meta)
  local mark = redis.call('GET', prefix .. 'closed:' .. lobby_id)
  return mark ~= false and (mark == '1' or mark == tostring(meta.created))
end
local function finish(prefix, lobby_id, meta, ttl)
  redis.call('DEL', prefix .. 'lobby:' .. lobby_id, prefix .. 'members:' .. lobby_id)
  redis.call('ZREM', prefix .. 'lobbies', lobby_id)
  redis.call('SET', prefix .. 'closed:' .. lobby_id, tostring(meta.created), 'EX', ttl)
  if type(meta.hub) == 'string' then redis.call('ZREM', prefix .. 'hublobs:' .. meta.hub, lobby_id) end
  if type(meta.owner) == 'table' then
    local a, p = quota_keys(prefix, meta.owner)
    redis.call('HDEL', a, lobby_id)
    redis.call('HDEL', p, lobby_id)
  end
end
-- Live members of a lobby ({} when it ended here: see the module docstring), and whether it still lives.
local function lobby_members(prefix, lobby_id, raw, ttl)
  local meta = cjson.decode(raw)
  local before = redis.call('HLEN', prefix .. 'members:' .. lobby_id)
  local live = live_members(prefix, lobby_id)
  if #live > 0 or meta.persistent then return live, true end
  if before > 0 or (type(meta.hub) == 'string' and redis.call('EXISTS', prefix .. 'hub:' .. meta.hub) == 0) then
    finish(prefix, lobby_id, meta, ttl)
    return live, false
  end
  return live, true
end
local function count_owned(prefix, key, except, ttl)
  local n = 0
  for _, id in ipairs(redis.call('HKEYS', key)) do
    if id ~= except then
      local raw = redis.call('GET', prefix .. 'lobby:' .. id)
      local alive = false
      if raw then
        local _, lives = lobby_members(prefix, id, raw, ttl)
        alive = lives
      end
      if alive then n = n + 1 else redis.call('HDEL', key, id) end
    end
  end
  return n
end
"""

# ARGV: prefix, lobby id, meta JSON (with ``owner`` and ``hub``), lobby TTL, max lobbies per address, max
# lobbies per peer (0: unlimited). Registers a lobby just created on a hub and counts it against its creator's
# quotas in one atomic step: no interleaving of creates on several hubs passes a quota. Returns {'ok'} or
# {'quota', 'peer' | 'address'} (nothing registered).
CREATE = """
local prefix, lobby_id, meta, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local owner = cjson.decode(meta).owner
if type(owner) == 'table' then
  local a, p = quota_keys(prefix, owner)
  local max_address, max_peer = tonumber(ARGV[5]), tonumber(ARGV[6])
  if max_peer > 0 and count_owned(prefix, p, lobby_id, ttl) >= max_peer then return {'quota', 'peer'} end
  if max_address > 0 and count_owned(prefix, a, lobby_id, ttl) >= max_address then return {'quota', 'address'} end
end
refresh(prefix, lobby_id, meta, ttl, {})
return {'ok'}
"""

# ARGV: prefix, lobby id, lobby TTL, '1' when the lobby's creation was undone (else ''). A hub dropped an
# ephemeral lobby it held (nobody joined it in time): it ends cluster-wide unless a member joined it through
# another hub meanwhile. A lobby whose creation was undone (its id never given out) ends whatever it is, and is
# tombstoned even when it is not in Redis: the create (or a heartbeat) a hub gave up on may still reach Redis
# after this, and must not register it then. Returns 1 when it ended.
FINISH = """
local prefix, lobby_id, ttl, undone = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
if undone then
  local meta = redis.call('GET', prefix .. 'lobby:' .. lobby_id)
  finish(prefix, lobby_id, meta and cjson.decode(meta) or {}, ttl)
  redis.call('SET', prefix .. 'closed:' .. lobby_id, '1', 'EX', ttl)
  return 1
end
local raw = redis.call('GET', prefix .. 'lobby:' .. lobby_id)
if not raw then return 0 end
local meta = cjson.decode(raw)
if meta.persistent or #live_members(prefix, lobby_id) > 0 then return 0 end
finish(prefix, lobby_id, meta, ttl)
return 1
"""

# ARGV: prefix, cursor ('' for the first page), limit, lobby TTL. Up to limit + 1 public lobbies after the cursor
# as (id, meta JSON, live member count); expired ids are dropped, lost members pruned and lobbies that ended
# (see the module docstring) removed on the way.
LIST = """
local prefix, ttl = ARGV[1], ARGV[4]
local lobbies = prefix .. 'lobbies'
local out = {}
local start = ARGV[2] == '' and '-' or '(' .. ARGV[2]
local want = tonumber(ARGV[3]) + 1
local found = 0
while found < want do
  local ids = redis.call('ZRANGEBYLEX', lobbies, start, '+', 'LIMIT', 0, 100)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    start = '(' .. id
    local raw = redis.call('GET', prefix .. 'lobby:' .. id)
    if not raw then
      redis.call('ZREM', lobbies, id)
    elseif not cjson.decode(raw).private then
      local live, lives = lobby_members(prefix, id, raw, ttl)
      if lives then
        found = found + 1
        out[#out + 1] = id
        out[#out + 1] = raw
        out[#out + 1] = #live / 2
        if found >= want then break end
      end
    end
  end
end
return out
"""

# The sweep of lost hubs' lobbies a heartbeat runs (see the module docstring): ``sweep(prefix, hub id, budget,
# ttl)`` looks at no more than ``budget`` lobbies, those waiting longest first, after one EXISTS per hub in
# ``lobhubs`` (a handful: the hubs that ran lately). Needs LIFETIME_FN and ``hub_alive`` (``_PRUNE``).
SWEEP_FN = """
local function sweep(prefix, hub_id, budget, ttl)
  local hubs_key = prefix .. 'lobhubs'
  local now = tonumber(redis.call('TIME')[1])
  for _, lost in ipairs(redis.call('SMEMBERS', hubs_key)) do
    if budget <= 0 then return end
    if lost ~= hub_id and redis.call('EXISTS', prefix .. 'hub:' .. lost) == 0 then
      local index = prefix .. 'hublobs:' .. lost
      local ids = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, budget)
      budget = budget - #ids
      for _, id in ipairs(ids) do
        redis.call('ZREM', index, id)
        local raw = redis.call('GET', prefix .. 'lobby:' .. id)
        local meta = raw and cjson.decode(raw)
        if meta and meta.hub == lost then  -- else another hub answers for it now: not this index's any more
          local live, lives = lobby_members(prefix, id, raw, ttl)
          if lives and not meta.persistent then
            local heir = nil
            for i = 2, #live, 2 do
              local hub = cjson.decode(live[i]).hub
              if hub_alive[hub] then heir = hub break end
            end
            if heir then  -- a live hub's member keeps it: that hub answers for it now
              meta.hub = heir
              redis.call('SET', prefix .. 'lobby:' .. id, cjson.encode(meta), 'KEEPTTL')
              index_lobby(prefix, heir, id, ttl, 0)
            else  -- kept by sessions of lost hubs still in their resume grace
              redis.call('ZADD', index, now + 1, id)
            end
          end
        end
      end
      if redis.call('EXISTS', index) == 0 then redis.call('SREM', hubs_key, lost) end
    end
  end
end
"""
