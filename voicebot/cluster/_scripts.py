"""The Lua scripts cluster mode runs in Redis (each one atomic: no other hub's call interleaves with it).

Every script gets the key prefix (:data:`~voicebot.cluster.PREFIX`) and builds key names from it (cluster mode
uses one Redis database, not Redis Cluster, so keys need not be declared). Keys, each with a TTL:

- ``hub:{id}``: a hub is alive while this key exists.
- ``lobby:{id}``: a lobby's public settings and password hash (JSON); ``members:{id}``: hash peer id → JSON
  ``{peer, hub, seq}``; ``lobbies``: sorted set of lobby ids (all scored 0: ordered by id); ``seq``: join order.
- ``bots``, ``botl:{lobby}``, ``botp:{peer}``, ``botjobs:{hub}``: bot offers and cluster-wide bot quotas (see
  :mod:`._bot_scripts`); ``ticket:{hash}`` → lobby id: a join ticket any hub accepts.
- ``closed:{id}``: ``1`` for a lobby an admin closed (for a minute), else the creation time of a lobby that
  ended (for the lobby TTL): no hub re-asserts it meanwhile.
- ``lqa:{address key}``, ``lqp:{peer}``: the cluster-wide lobby quotas; ``hublobs:{hub}``, ``lobhubs``: which hub
  answers for which ephemeral lobby, swept when that hub is lost (see :mod:`._lobby_scripts`).
- ``sess:{peer}``: a resumable session (JSON ``{peer_id, name, kind, admin, session_id, lobby_id, hub,
  token}``, ``token`` being the resume token's hash; ``lobby_id`` is set by ``admit`` and cleared by ``leave``
  and ``close``, as the membership changes), alive while its hub refreshes it and for the resume grace after;
  ``tok:{token hash}`` → peer id; ``buf:{peer}``/``bufb:{peer}``: messages kept for a peer whose hub was lost
  (a list, bounded in count and bytes) and their size.
- ``inbox:{hub}``: a stream of messages for a hub's peers (see :mod:`._inbox`), alive while its hub refreshes it
  and for the resume grace after.
- ``handed:{hub}``, ``claimed:{hub}``: peers a hub handed over, or that a new hub claimed away from it because it
  did not answer the hand-over in time (see :mod:`._move_scripts`).

A member is live while its hub is alive or, when its hub was lost, while its session can still be resumed;
other members are pruned whenever a script counts or lists members.
"""

from __future__ import annotations

from . import _lobby_scripts as _lifetime
from ._bot_scripts import BOTFREE, BOTQUOTA, CATALOG, JOBS_FN, OFFERS
from ._inbox import SALVAGE_FN
from ._move_scripts import CLAIM, COPY, HAND
from ._move_scripts import STASH_FN as _STASH_FN

__all__ = [
    "ADMIT", "BOTFREE", "BOTQUOTA", "CATALOG", "CLAIM", "CLOSE", "COPY", "CREATE", "DRAIN", "END", "FINISH", "FORGET",
    "HAND", "LEAVE", "LIST", "OFFERS", "REFRESH", "SAVE", "STASH", "TAKEOVER", "TICK",
]

# Whether a hub is alive is looked up once per script call (members are mostly on a few hubs; no script changes
# a hub key after it starts counting members).
_PRUNE = """
local hub_alive = {}
local function live_members(prefix, lobby_id)
  local members_key = prefix .. 'members:' .. lobby_id
  local all = redis.call('HGETALL', members_key)
  local out = {}
  for i = 1, #all, 2 do
    local member = cjson.decode(all[i + 1])
    local alive = hub_alive[member.hub]
    if alive == nil then
      alive = redis.call('EXISTS', prefix .. 'hub:' .. member.hub) == 1
      hub_alive[member.hub] = alive
    end
    if alive or redis.call('EXISTS', prefix .. 'sess:' .. all[i]) == 1 then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    else
      redis.call('HDEL', members_key, all[i])
    end
  end
  return out
end
"""

# Re-asserts a hub's lobby and its members there (after an outage or a Redis restart), and the lobby's entries
# in its creator's quotas (named by the stored meta); returns live members.
_REFRESH_FN = _PRUNE + _lifetime.LIFETIME_FN + """
local function refresh(prefix, lobby_id, meta, ttl, pairs)
  local lobby_key, members_key = prefix .. 'lobby:' .. lobby_id, prefix .. 'members:' .. lobby_id
  local stored = redis.call('GET', lobby_key)
  local decoded = cjson.decode(stored or meta)
  if tombstoned(prefix, lobby_id, decoded) then return {} end
  if not stored then
    redis.call('SET', lobby_key, meta)
    if type(decoded.hub) == 'string' and not decoded.persistent then
      index_lobby(prefix, decoded.hub, lobby_id, ttl, 0)
    end
  end
  redis.call('EXPIRE', lobby_key, ttl)
  if type(decoded.owner) == 'table' then own_lobby(prefix, lobby_id, decoded.owner, ttl) end
  redis.call('ZADD', prefix .. 'lobbies', 'NX', 0, lobby_id)
  for i = 1, #pairs, 2 do
    if redis.call('HEXISTS', members_key, pairs[i]) == 0 then
      local member = cjson.decode(pairs[i + 1])
      member.seq = redis.call('INCR', prefix .. 'seq')
      redis.call('HSET', members_key, pairs[i], cjson.encode(member))
    end
  end
  redis.call('EXPIRE', members_key, ttl)
  return live_members(prefix, lobby_id)
end
"""

# Stores a session this hub holds (not one another hub has taken over meanwhile). Its lobby is ``joined`` when
# given (an admit), else the stored one while the peer is in that lobby's member set (joins, leaves and closes
# set it in the same script as the membership change: a record built before one of them must not undo it),
# else the record's own.
_SAVE_FN = """
local function save(prefix, hub_id, peer_id, record, token, ttl, joined)
  local key = prefix .. 'sess:' .. peer_id
  local current = redis.call('GET', key)
  local lobby_id = joined
  if current then
    local stored = cjson.decode(current)
    if stored.hub ~= hub_id then return 0 end
    if not lobby_id and type(stored.lobby_id) == 'string'
        and redis.call('HEXISTS', prefix .. 'members:' .. stored.lobby_id, peer_id) == 1 then
      lobby_id = stored.lobby_id
    end
  end
  if lobby_id then
    local decoded = cjson.decode(record)
    if decoded.lobby_id ~= lobby_id then
      decoded.lobby_id = lobby_id
      record = cjson.encode(decoded)
    end
  end
  redis.call('SET', key, record, 'EX', ttl)
  redis.call('SET', prefix .. 'tok:' .. token, peer_id, 'EX', ttl)
  redis.call('EXPIRE', prefix .. 'buf:' .. peer_id, ttl)
  redis.call('EXPIRE', prefix .. 'bufb:' .. peer_id, ttl)
  return 1
end
"""

# The stored session of ``peer_id`` no longer names ``lobby_id`` (it left, or the lobby was closed).
_UNSET_FN = """
local function unset_lobby(prefix, peer_id, lobby_id)
  local key = prefix .. 'sess:' .. peer_id
  local raw = redis.call('GET', key)
  if not raw then return end
  local record = cjson.decode(raw)
  if record.lobby_id == lobby_id then
    record.lobby_id = cjson.null
    redis.call('SET', key, cjson.encode(record), 'KEEPTTL')
  end
end
"""

# ARGV: prefix, peer id, member JSON (without seq), lobby id, lobby TTL, then the session's record JSON, token
# hash and TTL ('' when it is not resumable). Atomic check-and-add: no interleaving of two hubs' joins can pass
# max_members; the stored session names the lobby from the same step, so a resume on any hub right after the
# join resumes in it. Returns {'ok', meta, members…}, {'full', meta}, {'closed'} or {'missing'}.
ADMIT = _PRUNE + _lifetime.LIFETIME_FN + _SAVE_FN + """
local prefix, peer_id, lobby_id = ARGV[1], ARGV[2], ARGV[4]
local lobby_key, members_key = prefix .. 'lobby:' .. lobby_id, prefix .. 'members:' .. lobby_id
local meta = redis.call('GET', lobby_key)
if not meta then
  if redis.call('EXISTS', prefix .. 'closed:' .. lobby_id) == 1 then return {'closed'} end
  return {'missing'}
end
if tombstoned(prefix, lobby_id, cjson.decode(meta)) then return {'closed'} end
local max_members = tonumber(cjson.decode(meta).max_members)
local live = live_members(prefix, lobby_id)
local count = 0
for i = 1, #live, 2 do
  if live[i] ~= peer_id then count = count + 1 end
end
if count >= max_members then return {'full', meta} end
if redis.call('HEXISTS', members_key, peer_id) == 0 then
  local member = cjson.decode(ARGV[3])
  member.seq = redis.call('INCR', prefix .. 'seq')
  redis.call('HSET', members_key, peer_id, cjson.encode(member))
end
redis.call('EXPIRE', lobby_key, ARGV[5])
redis.call('EXPIRE', members_key, ARGV[5])
if ARGV[6] ~= '' then
  save(prefix, cjson.decode(ARGV[3]).hub, peer_id, ARGV[6], ARGV[7], ARGV[8], lobby_id)
end
local result = {'ok', meta}
local all = redis.call('HGETALL', members_key)
for i = 1, #all do result[#result + 1] = all[i] end
return result
"""

# ARGV: prefix, lobby id, meta JSON, lobby TTL, then pairs of (peer id, member JSON) of this hub's members.
REFRESH = _REFRESH_FN + """
local pairs = {}
for i = 5, #ARGV do pairs[#pairs + 1] = ARGV[i] end
return refresh(ARGV[1], ARGV[2], ARGV[3], ARGV[4], pairs)
"""

# ARGV: prefix, hub id, peer id, record JSON, token hash, TTL. Stores a session this hub holds (not one another
# hub has taken over meanwhile).
SAVE = _SAVE_FN + """
return save(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
"""

# ARGV: prefix, hub id, peer id. A session this hub held ended for good: it cannot be resumed anywhere.
FORGET = """
local prefix, peer_id = ARGV[1], ARGV[3]
local key = prefix .. 'sess:' .. peer_id
local current = redis.call('GET', key)
if not current then return 0 end
local record = cjson.decode(current)
if record.hub ~= ARGV[2] then return 0 end
redis.call('DEL', key, prefix .. 'tok:' .. record.token, prefix .. 'buf:' .. peer_id, prefix .. 'bufb:' .. peer_id)
return 1
"""

# ARGV: prefix, hub id, hub TTL, JSON {lobbies: [[id, meta, ttl, [peer id, member JSON, …]], …],
# sessions: [[peer id, record JSON, token hash, ttl], …], bots: {bot: [free capacity, description]},
# jobs: [[job id, lobby id, owner], …]}, inbox TTL (ms), lobby TTL, sweep budget. A hub's whole heartbeat in one
# call: its liveness key and its inbox's TTL, its sessions (only those no other hub took over), its workers' free
# capacity, its bots' quota entries and its lobbies, then the sweep of lost hubs' lobbies (up to the budget; see
# :mod:`._lobby_scripts`). Returns {entries of this hub's inbox lost to its bound so far, live members of each
# lobby…}.
TICK = _REFRESH_FN + _SAVE_FN + JOBS_FN + _lifetime.SWEEP_FN + """
local prefix, hub_id = ARGV[1], ARGV[2]
redis.call('SET', prefix .. 'hub:' .. hub_id, '1', 'EX', ARGV[3])
redis.call('PEXPIRE', prefix .. 'inbox:' .. hub_id, ARGV[5])
local out = {tonumber(redis.call('GET', prefix .. 'lost:' .. hub_id) or '0')}
local data = cjson.decode(ARGV[4])
for _, s in ipairs(data.sessions) do
  save(prefix, hub_id, s[1], s[2], s[3], s[4])
end
if next(data.bots) then
  redis.call('HSET', prefix .. 'bots', hub_id, cjson.encode(data.bots))
else
  redis.call('HDEL', prefix .. 'bots', hub_id)
end
sync_jobs(prefix, hub_id, data.jobs or {})
for _, lobby in ipairs(data.lobbies) do
  out[#out + 1] = refresh(prefix, lobby[1], lobby[2], lobby[3], lobby[4])
end
if redis.call('EXPIRE', prefix .. 'hublobs:' .. hub_id, ARGV[6]) == 1 then
  redis.call('SADD', prefix .. 'lobhubs', hub_id)
  redis.call('EXPIRE', prefix .. 'lobhubs', ARGV[6])
end
sweep(prefix, hub_id, tonumber(ARGV[7]), ARGV[6])
return out
"""

# ARGV: prefix, peer id, lobby id, lobby TTL. Removes a member (its stored session no longer names the lobby);
# an ephemeral lobby left without live members ends (see :mod:`._lobby_scripts`).
LEAVE = _PRUNE + _lifetime.LIFETIME_FN + _UNSET_FN + """
local prefix, peer_id, lobby_id = ARGV[1], ARGV[2], ARGV[3]
redis.call('HDEL', prefix .. 'members:' .. lobby_id, peer_id)
unset_lobby(prefix, peer_id, lobby_id)
local raw = redis.call('GET', prefix .. 'lobby:' .. lobby_id)
if raw then
  local meta = cjson.decode(raw)
  if not meta.persistent and #live_members(prefix, lobby_id) == 0 then finish(prefix, lobby_id, meta, ARGV[4]) end
end
return 1
"""

LIST = _PRUNE + _lifetime.LIFETIME_FN + _lifetime.LIST
CREATE = _REFRESH_FN + _lifetime.CREATE
FINISH = _PRUNE + _lifetime.LIFETIME_FN + _lifetime.FINISH

# ARGV: prefix, token hash, new hub id, max kept messages, max kept bytes. Takes a resumable
# session over for the new hub: the session record and its lobby membership now name the new hub; when the
# previous hub is lost, what it left unread in its inbox is kept for its peers first (drained after this). The
# lobby's member set decides: a record naming a lobby the peer is not a member of resumes outside it. Returns {}
# when the token resumes nothing, else {record JSON, previous hub, whether that hub is alive (1/0), members of
# its lobby (flat)}.
TAKEOVER = _PRUNE + SALVAGE_FN + """
local prefix, token, hub_id = ARGV[1], ARGV[2], ARGV[3]
local peer_id = redis.call('GET', prefix .. 'tok:' .. token)
if not peer_id then return {} end
local key = prefix .. 'sess:' .. peer_id
local raw = redis.call('GET', key)
if not raw then return {} end
local record = cjson.decode(raw)
if record.token ~= token then return {} end
if redis.call('EXISTS', prefix .. 'hub:' .. record.hub) == 0 then
  salvage(prefix, record.hub, ARGV[4], ARGV[5])
end
local previous = record.hub
record.hub = hub_id
local members = {}
if type(record.lobby_id) == 'string' then
  local members_key = prefix .. 'members:' .. record.lobby_id
  local member = redis.call('HGET', members_key, peer_id)
  if member then
    member = cjson.decode(member)
    member.hub = hub_id
    redis.call('HSET', members_key, peer_id, cjson.encode(member))
    members = live_members(prefix, record.lobby_id)
  else
    record.lobby_id = cjson.null
  end
end
-- Marks of an earlier move no longer apply: the peer is back on this hub, or moves on from a hub that held it.
redis.call('HDEL', prefix .. 'claimed:' .. hub_id, peer_id)
redis.call('HDEL', prefix .. 'handed:' .. previous, peer_id)
local encoded = cjson.encode(record)
redis.call('SET', key, encoded, 'KEEPTTL')
local alive = redis.call('EXISTS', prefix .. 'hub:' .. previous)
return {encoded, previous, alive, members}
"""

# ARGV: prefix, peer id, expected hub ('' for any), max messages, max bytes, then messages (JSON). Keeps
# messages for a peer whose hub was lost (or that hub's buffer when it hands the session over). Returns
# {'ok'}; {'gone'} when the session cannot be resumed any more; {'moved', hub} when another hub took it over
# (send there instead); {'overflow'} when the bounds were passed: the session is ended (no resume).
STASH = _STASH_FN + """
local prefix, peer_id = ARGV[1], ARGV[2]
local raw = redis.call('GET', prefix .. 'sess:' .. peer_id)
if not raw then return {'gone'} end
local hub = cjson.decode(raw).hub
if ARGV[3] ~= '' and hub ~= ARGV[3] then return {'moved', hub} end
local payloads = {}
for i = 6, #ARGV do payloads[#payloads + 1] = ARGV[i] end
return stash(prefix, peer_id, payloads, tonumber(ARGV[4]), tonumber(ARGV[5]))
"""

# ARGV: prefix, peer id. The messages kept for a peer (oldest first), removed.
DRAIN = """
local buf = ARGV[1] .. 'buf:' .. ARGV[2]
local out = redis.call('LRANGE', buf, 0, -1)
redis.call('DEL', buf, ARGV[1] .. 'bufb:' .. ARGV[2])
return out
"""

# ARGV: prefix, lobby id, tombstone TTL. Closes a lobby cluster-wide: its keys go (its members' stored sessions
# no longer name it, its creator's quota place comes back) and no hub re-asserts it for a while. Returns {} when
# no hub has it, else {meta JSON, hub ids holding its members…}.
CLOSE = _PRUNE + _lifetime.LIFETIME_FN + _UNSET_FN + """
local prefix, lobby_id = ARGV[1], ARGV[2]
local meta = redis.call('GET', prefix .. 'lobby:' .. lobby_id)
if not meta then return {} end
local members = live_members(prefix, lobby_id)
local out, seen = {meta}, {}
for i = 2, #members, 2 do
  unset_lobby(prefix, members[i - 1], lobby_id)
  local hub = cjson.decode(members[i]).hub
  if not seen[hub] then
    seen[hub] = true
    out[#out + 1] = hub
  end
end
finish(prefix, lobby_id, cjson.decode(meta), ARGV[3])
redis.call('SET', prefix .. 'closed:' .. lobby_id, '1', 'EX', ARGV[3])  -- every lobby of that id, for a while
return out
"""

# ARGV: prefix, peer id. Ends a session whose hub was lost (an admin kicked it): it cannot be resumed and
# leaves its lobby. Returns the lobby id it was in ('' if none), or {} when there is no such session.
END = """
local prefix, peer_id = ARGV[1], ARGV[2]
local key = prefix .. 'sess:' .. peer_id
local raw = redis.call('GET', key)
if not raw then return {} end
local record = cjson.decode(raw)
redis.call('DEL', key, prefix .. 'tok:' .. record.token, prefix .. 'buf:' .. peer_id, prefix .. 'bufb:' .. peer_id)
local lobby_id = type(record.lobby_id) == 'string' and record.lobby_id or ''
if lobby_id ~= '' then redis.call('HDEL', prefix .. 'members:' .. lobby_id, peer_id) end
return {lobby_id}
"""
