"""The Lua scripts of cluster mode's bots: worker offers, and bot quotas held cluster-wide.

Keys (under the prefix): ``bots``: hash hub id → JSON ``{bot: [free capacity, description]}`` of that hub's
workers (read only for live hubs). ``botl:{lobby}`` and ``botp:{peer}``: hash job id → hub id of the bots
(starting or running) in a lobby and of those a peer added; ``botjobs:{hub}``: set of ``job|lobby|owner`` a hub
holds, so its heartbeat can make those hashes match its jobs exactly (entries a failed call left behind go, a
Redis restart is healed). An entry counts while its hub is alive; a lost hub's entries are pruned whenever a
quota is checked.
"""

from __future__ import annotations

__all__ = ["BOTFREE", "BOTQUOTA", "CATALOG", "JOBS_FN", "OFFERS"]

#: TTL (seconds) of the quota hashes: refreshed by every heartbeat of a hub holding bots.
_QUOTA_TTL = "3600"

_ADD_JOB_FN = """
local function add_job(prefix, hub_id, job, lobby, owner)
  local lkey, pkey = prefix .. 'botl:' .. lobby, prefix .. 'botp:' .. owner
  redis.call('HSET', lkey, job, hub_id)
  redis.call('HSET', pkey, job, hub_id)
  redis.call('SADD', prefix .. 'botjobs:' .. hub_id, job .. '|' .. lobby .. '|' .. owner)
  redis.call('EXPIRE', lkey, """ + _QUOTA_TTL + """)
  redis.call('EXPIRE', pkey, """ + _QUOTA_TTL + """)
  redis.call('EXPIRE', prefix .. 'botjobs:' .. hub_id, """ + _QUOTA_TTL + """)
end
local function drop_job(prefix, hub_id, entry)
  local job, lobby, owner = string.match(entry, '^([^|]*)|([^|]*)|(.*)$')
  redis.call('SREM', prefix .. 'botjobs:' .. hub_id, entry)
  if job then
    redis.call('HDEL', prefix .. 'botl:' .. lobby, job)
    redis.call('HDEL', prefix .. 'botp:' .. owner, job)
  end
end
"""

# Used by the heartbeat (``tick``): make this hub's quota entries match ``jobs`` ([[job id, lobby id, owner], …]).
JOBS_FN = _ADD_JOB_FN + """
local function sync_jobs(prefix, hub_id, jobs)
  local wanted = {}
  for _, j in ipairs(jobs) do wanted[j[1] .. '|' .. j[2] .. '|' .. j[3]] = j end
  for _, entry in ipairs(redis.call('SMEMBERS', prefix .. 'botjobs:' .. hub_id)) do
    if not wanted[entry] then drop_job(prefix, hub_id, entry) end
  end
  for _, j in pairs(wanted) do add_job(prefix, hub_id, j[1], j[2], j[3]) end
end
"""

# ARGV: prefix, hub id, job id, lobby id, owner peer id, max bots per lobby, max bots per peer (0: unlimited).
# Atomic check-and-add: no interleaving of two hubs' bot.add can pass either quota. Returns 'ok', 'lobby' or
# 'peer' (the quota that is full).
BOTQUOTA = _ADD_JOB_FN + """
local prefix, hub_id, job, lobby, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function live(key)
  local all = redis.call('HGETALL', key)
  local n = 0
  for i = 1, #all, 2 do
    if all[i + 1] == hub_id or redis.call('EXISTS', prefix .. 'hub:' .. all[i + 1]) == 1 then
      n = n + 1
    else
      redis.call('HDEL', key, all[i])
    end
  end
  return n
end
local max_lobby, max_peer = tonumber(ARGV[6]), tonumber(ARGV[7])
if max_lobby > 0 and live(prefix .. 'botl:' .. lobby) >= max_lobby then return 'lobby' end
if max_peer > 0 and live(prefix .. 'botp:' .. owner) >= max_peer then return 'peer' end
add_job(prefix, hub_id, job, lobby, owner)
return 'ok'
"""

# ARGV: prefix, hub id, job id, lobby id, owner peer id. A bot of this hub ended (or did not start).
BOTFREE = _ADD_JOB_FN + """
drop_job(ARGV[1], ARGV[2], ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5])
return 1
"""

# ARGV: prefix, bot name, asking hub id. Live hubs other than the asking one with room for that bot, most room
# first (lost hubs' entries are removed).
OFFERS = """
local prefix, bot = ARGV[1], ARGV[2]
local all = redis.call('HGETALL', prefix .. 'bots')
local found = {}
for i = 1, #all, 2 do
  if redis.call('EXISTS', prefix .. 'hub:' .. all[i]) == 0 then
    redis.call('HDEL', prefix .. 'bots', all[i])
  elseif all[i] ~= ARGV[3] then
    local entry = cjson.decode(all[i + 1])[bot]
    local free = entry and tonumber(entry[1]) or 0
    if free > 0 then found[#found + 1] = {all[i], free} end
  end
end
table.sort(found, function(a, b) return a[2] > b[2] end)
local out = {}
for i = 1, #found do out[i] = found[i][1] end
return out
"""

# ARGV: prefix, asking hub id. The worker offers of the other live hubs: {hub id, offers JSON, …}.
CATALOG = """
local prefix = ARGV[1]
local all = redis.call('HGETALL', prefix .. 'bots')
local out = {}
for i = 1, #all, 2 do
  if all[i] ~= ARGV[2] and redis.call('EXISTS', prefix .. 'hub:' .. all[i]) == 1 then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
"""
