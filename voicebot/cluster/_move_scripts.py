"""The Lua scripts that decide, atomically, who passes on what a peer's old hub held for it when the peer moves.

A hub that takes a session over from a live hub asks that hub to hand it over and waits up to a call deadline.
Either the old hub answers (``HAND``: its buffer goes to the peer's kept messages and ``handed:{old hub}`` marks
the peer) or the new hub stops waiting and *claims* the peer (``CLAIM``: it takes the peer's messages still in the
old hub's inbox and ``claimed:{old hub}`` marks the peer) — whichever comes first in Redis; the other one then
does nothing. Once a peer is claimed away from a hub:

- what that hub would still hand over or copy to Redis for the peer is refused (it holds only what the claim
  took already, or what it read after the claim and no longer passes on: the peer got those from the claim);
- what any hub sends to that hub's inbox for the peer goes to the inbox of the hub the peer's session names
  instead, in the same script as the send (see ``SEND`` in :mod:`._inbox`), so nothing lands in an inbox the
  new hub no longer reads;
- what that hub relays to the new hub for the peer (read from its inbox after it saw the takeover) carries the
  entry's id, and the new hub drops what it claimed from that entry already.

Keys (hashes peer id → ``1``, alive for the inbox TTL after the last mark): ``handed:{hub}``, ``claimed:{hub}``.
A takeover clears the marks of the peer that no longer apply (it is back on a hub that lost it, or moves on).
"""

from __future__ import annotations

__all__ = ["CLAIM", "COPY", "HAND", "MARK_FN", "STASH_FN"]

# Appends raw messages to a peer's kept messages, bounded: past ``max_count`` messages or ``max_bytes`` bytes the
# session ends (its record and what was kept go). Returns {'ok'} or {'overflow'}.
STASH_FN = """
local function stash(prefix, peer_id, payloads, max_count, max_bytes)
  local key = prefix .. 'sess:' .. peer_id
  local buf, bytes_key = prefix .. 'buf:' .. peer_id, prefix .. 'bufb:' .. peer_id
  for _, raw in ipairs(payloads) do
    local bytes = tonumber(redis.call('GET', bytes_key) or '0')
    if redis.call('LLEN', buf) + 1 > max_count or bytes + #raw > max_bytes then
      redis.call('DEL', key, buf, bytes_key)
      return {'overflow'}
    end
    redis.call('RPUSH', buf, raw)
    redis.call('INCRBY', bytes_key, #raw)
  end
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    redis.call('PEXPIRE', buf, ttl)
    redis.call('PEXPIRE', bytes_key, ttl)
  end
  return {'ok'}
end
"""

# Marks ``peer_id`` in hash ``key``, which then lives at least ``ttl`` ms.
MARK_FN = """
local function mark(key, peer_id, ttl)
  redis.call('HSET', key, peer_id, '1')
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
"""

# What hub ``source`` held for ``peer_id`` goes to the peer's kept messages (see STASH_FN), unless another hub
# claimed the peer away from ``source`` (``'claimed'``: the claim took what it needed) or the peer has no resumable
# session (``'gone'``). Returns ``'ok'``, ``'claimed'``, ``'gone'`` or ``'overflow'``.
_PASS_ON_FN = STASH_FN + """
local function pass_on(prefix, source, peer_id, payloads, max_count, max_bytes)
  if redis.call('HEXISTS', prefix .. 'claimed:' .. source, peer_id) == 1 then return 'claimed' end
  if redis.call('EXISTS', prefix .. 'sess:' .. peer_id) == 0 then return 'gone' end
  return stash(prefix, peer_id, payloads, max_count, max_bytes)[1]
end
"""

#: ARGV: prefix, peer id, this hub's id, ``1`` to mark the hand-over (``0``: keep without marking), mark TTL
#: (ms), max kept messages, max kept bytes, then messages (JSON). What this hub buffered for a peer another hub
#: took over goes to its kept messages (see ``pass_on``); a hand-over marks the peer handed, so a claim coming
#: later takes nothing. Returns {'ok'}, {'claimed'}, {'gone'} or {'overflow'} (the session is ended).
HAND = _PASS_ON_FN + MARK_FN + """
local prefix, peer_id, source = ARGV[1], ARGV[2], ARGV[3]
local payloads = {}
for i = 8, #ARGV do payloads[#payloads + 1] = ARGV[i] end
local result = pass_on(prefix, source, peer_id, payloads, tonumber(ARGV[6]), tonumber(ARGV[7]))
if ARGV[4] == '1' and (result == 'ok' or result == 'overflow') then
  mark(prefix .. 'handed:' .. source, peer_id, ARGV[5])
end
return {result}
"""

#: ARGV: prefix, this hub's id, trim id (``''``: none), max kept messages, max kept bytes, then for each peer: its
#: id, a count n and n messages (JSON). The write-through copy (see :mod:`._writethrough`): what this hub buffered
#: for peers in grace goes to their kept messages, except for a peer claimed away from this hub (the claim took
#: what it needed) or without a resumable session; then this hub's inbox is trimmed before the trim id, in the
#: same script, so an entry leaves the inbox only with its messages for peers in grace safe. Returns each peer's
#: outcome in order: ``ok``, ``claimed``, ``gone`` or ``overflow`` (the bounds were passed: the session ended).
COPY = _PASS_ON_FN + """
local prefix, source, trim = ARGV[1], ARGV[2], ARGV[3]
local max_count, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
local i = 6
while i <= #ARGV do
  local peer_id, n = ARGV[i], tonumber(ARGV[i + 1])
  local payloads = {}
  for j = 1, n do payloads[j] = ARGV[i + 1 + j] end
  i = i + 2 + n
  out[#out + 1] = pass_on(prefix, source, peer_id, payloads, max_count, max_bytes)
end
if trim ~= '' then redis.call('XTRIM', prefix .. 'inbox:' .. source, 'MINID', trim) end
return out
"""

#: ARGV: prefix, old hub id, peer id, this hub's id, mark TTL (ms). The old hub did not answer the hand-over in
#: time: unless it handed the session over meanwhile (``{'handed'}``), the peer is claimed away from it and its
#: messages still in the old hub's inbox are returned, oldest first: ``{'claimed', entry id, message JSON, …}``.
#: ``{'gone'}`` when the session is no longer this hub's.
CLAIM = MARK_FN + """
local prefix, old, peer_id, hub_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local raw = redis.call('GET', prefix .. 'sess:' .. peer_id)
if not raw or cjson.decode(raw).hub ~= hub_id then return {'gone'} end
if redis.call('HEXISTS', prefix .. 'handed:' .. old, peer_id) == 1 then return {'handed'} end
mark(prefix .. 'claimed:' .. old, peer_id, ARGV[5])
local out = {'claimed'}
local needle = ' ' .. peer_id .. ' '
for _, entry in ipairs(redis.call('XRANGE', prefix .. 'inbox:' .. old, '-', '+')) do
  local fields = entry[2]
  for i = 1, #fields - 3, 2 do
    if string.sub(fields[i], 1, 1) == 't' and string.find(' ' .. fields[i + 1] .. ' ', needle, 1, true) then
      out[#out + 1] = entry[1]
      out[#out + 1] = fields[i + 3]
    end
  end
end
return out
"""
