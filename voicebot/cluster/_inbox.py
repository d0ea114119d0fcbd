"""Each hub's inbox: one Redis stream per hub that other hubs append to and the hub reads in order.

A stream keeps what is appended until it is read and trimmed, so a hub whose reading connection drops (a Redis
blip, a reset connection) continues from the last entry it read when it reconnects: nothing sent meanwhile is
lost or read twice. Sending checks the target hub's liveness key (``hub:{id}``) in the same script: a hub whose
key expired is gone, and what is still unread in its inbox is *salvaged* (kept for each of its peers whose
session can still be resumed, or appended to the inbox of the hub that took the session over), so the sender
then keeps its own message for those peers after it, in order.

Entry layout (so that scripts can copy a message without decoding and re-encoding it): ``from`` (sender hub),
optional ``via`` (the hub that relayed it) and ``at`` (the id of the entry of that hub's inbox it relays), then
``t{i}`` (receiver peer ids, space-separated) and ``m{i}`` (the message JSON) for each message of a batch, in
order; a control envelope is one ``c`` field (its JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SALVAGE_FN", "SEND", "decode_entry", "encode_envelope", "messages_for", "next_id"]

# Keeps one message of a lost hub's inbox for ``peer_id`` in its kept messages (bounded like STASH: passing the
# bounds ends the session) while its session still names the lost hub, or names the hub taking it over from the
# lost hub right now (it drains them once it stops waiting for the hand-over). A session the lost hub handed
# over, or that another hub claimed away from it, took what it needed already (see :mod:`._move_scripts`).
_KEEP_RAW_FN = """
local function keep_raw(prefix, lost, peer_id, raw, max_count, max_bytes)
  local key = prefix .. 'sess:' .. peer_id
  local record = redis.call('GET', key)
  if not record then return end
  if cjson.decode(record).hub == lost
      or (redis.call('HEXISTS', prefix .. 'handed:' .. lost, peer_id) == 0
          and redis.call('HEXISTS', prefix .. 'claimed:' .. lost, peer_id) == 0) then
    local buf, bytes_key = prefix .. 'buf:' .. peer_id, prefix .. 'bufb:' .. peer_id
    local bytes = tonumber(redis.call('GET', bytes_key) or '0')
    if redis.call('LLEN', buf) + 1 > tonumber(max_count) or bytes + #raw > tonumber(max_bytes) then
      redis.call('DEL', key, buf, bytes_key)
      return
    end
    redis.call('RPUSH', buf, raw)
    redis.call('INCRBY', bytes_key, #raw)
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then
      redis.call('PEXPIRE', buf, ttl)
      redis.call('PEXPIRE', bytes_key, ttl)
    end
  end
end
"""

#: Lua: ``salvage(prefix, lost hub, max count, max bytes)`` keeps every message still in a lost hub's inbox
#: (oldest first) for its receivers, then deletes the inbox.
SALVAGE_FN = _KEEP_RAW_FN + """
local function salvage(prefix, lost, max_count, max_bytes)
  local inbox = prefix .. 'inbox:' .. lost
  for _, entry in ipairs(redis.call('XRANGE', inbox, '-', '+')) do
    local fields = entry[2]
    for i = 1, #fields - 3, 2 do
      if string.sub(fields[i], 1, 1) == 't' then
        for peer_id in string.gmatch(fields[i + 1], '%S+') do
          keep_raw(prefix, lost, peer_id, fields[i + 3], max_count, max_bytes)
        end
      end
    end
  end
  redis.call('DEL', inbox)
end
"""

# Splits an entry's field/value pairs for ``hub_id`` by receiver: a peer claimed away from that hub (in hash
# ``claimed``, see :mod:`._move_scripts`) gets its messages through the hub its session names now (none when it
# has no session any more); the others stay. Returns hub id → the pairs of its entry (the same head, its
# messages renumbered, in order); a control entry stays whole.
_DIVERT_FN = """
local function divert(prefix, hub_id, claimed, fields)
  local head, items = {}, {}
  local i = 1
  while i <= #fields do
    if string.match(fields[i], '^t%d+$') then
      items[#items + 1] = {fields[i + 1], fields[i + 3]}
      i = i + 4
    else
      head[#head + 1] = fields[i]
      head[#head + 1] = fields[i + 1]
      i = i + 2
    end
  end
  if #items == 0 then return {[hub_id] = fields} end
  local out, home_of = {}, {}
  for _, item in ipairs(items) do
    local to = {}
    for peer_id in string.gmatch(item[1], '%S+') do
      local home = home_of[peer_id]
      if home == nil then
        home = hub_id
        if redis.call('HEXISTS', claimed, peer_id) == 1 then
          local raw = redis.call('GET', prefix .. 'sess:' .. peer_id)
          home = raw and cjson.decode(raw).hub or false
        end
        home_of[peer_id] = home
      end
      if home then
        to[home] = to[home] or {}
        table.insert(to[home], peer_id)
      end
    end
    for home, peers in pairs(to) do
      local entry = out[home]
      if not entry then
        entry = {}
        for _, value in ipairs(head) do entry[#entry + 1] = value end
        out[home] = entry
      end
      local n = (#entry - #head) / 4
      entry[#entry + 1] = 't' .. n
      entry[#entry + 1] = table.concat(peers, ' ')
      entry[#entry + 1] = 'm' .. n
      entry[#entry + 1] = item[2]
    end
  end
  return out
end
"""

#: ARGV: prefix, target hub id (``*``: the inbox every hub reads), inbox TTL (ms), most entries an inbox keeps, max
#: kept messages and bytes per peer, then the entry's field/value pairs. Appends the entry to the target's inbox
#: (a full inbox drops its oldest entry, counted in ``lost:{hub}``, reported by that hub as ``inbox_overflow``)
#: (the messages for peers claimed away from the target to their session's hub instead, see
#: :mod:`._move_scripts`) and returns 1; returns 0 when the target hub is gone (its unread inbox salvaged first).
SEND = SALVAGE_FN + _DIVERT_FN + """
local prefix, hub_id = ARGV[1], ARGV[2]
local inbox = prefix .. 'inbox:' .. hub_id
if hub_id ~= '*' and redis.call('EXISTS', prefix .. 'hub:' .. hub_id) == 0 then
  if redis.call('EXISTS', inbox) == 1 then salvage(prefix, hub_id, ARGV[5], ARGV[6]) end
  return 0
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local out = {[hub_id] = fields}
local claimed = prefix .. 'claimed:' .. hub_id
if hub_id ~= '*' and redis.call('EXISTS', claimed) == 1 then out = divert(prefix, hub_id, claimed, fields) end
local bound = tonumber(ARGV[4])
for home, entry in pairs(out) do
  local target = prefix .. 'inbox:' .. home
  local length = redis.call('XLEN', target)
  if home ~= '*' and length >= bound then  -- the oldest entry goes: counted where its hub reads it
    local lost = prefix .. 'lost:' .. home
    redis.call('INCRBY', lost, length - bound + 1)
    redis.call('PEXPIRE', lost, ARGV[3])
  end
  local args = {'XADD', target, 'MAXLEN', ARGV[4], '*'}
  for _, value in ipairs(entry) do args[#args + 1] = value end
  redis.call(unpack(args))
  if redis.call('PTTL', target) < 0 then redis.call('PEXPIRE', target, ARGV[3]) end
end
return 1
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def encode_envelope(envelope: Mapping[str, Any]) -> list[str]:
    """The field/value pairs of an inbox entry for ``envelope`` (see the module docstring): messages for peers
    (``batch`` of ``[to, message]``, or one ``to``/``msg``) as ``t{i}``/``m{i}``, anything else as ``c``."""
    if "batch" in envelope:
        items = envelope["batch"]
    elif "msg" in envelope:
        items = [(envelope["to"], envelope["msg"])]
    else:
        return ["c", _dumps(envelope)]
    fields = ["from", str(envelope["from"])]
    if "via" in envelope:
        fields += ["via", str(envelope["via"])]
    if "at" in envelope:
        fields += ["at", str(envelope["at"])]
    for index, (to, message) in enumerate(items):
        fields += [f"t{index}", " ".join(to), f"m{index}", _dumps(message)]
    return fields


def decode_entry(fields: Mapping[str, str]) -> dict[str, Any]:
    """The envelope an inbox entry carries (the inverse of :func:`encode_envelope`, messages as a ``batch``)."""
    if "c" in fields:
        envelope: dict[str, Any] = json.loads(fields["c"])
        return envelope
    batch = []
    index = 0
    while f"t{index}" in fields:
        batch.append([fields[f"t{index}"].split(), json.loads(fields[f"m{index}"])])
        index += 1
    out: dict[str, Any] = {"from": fields["from"], "batch": batch}
    for key in ("via", "at"):
        if key in fields:
            out[key] = fields[key]
    return out


def next_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (``XTRIM MINID`` with it drops ``entry_id`` too)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def messages_for(peer_id: str, entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """The messages for ``peer_id`` in inbox entries (their fields, oldest first)."""
    out = []
    for fields in entries:
        envelope = decode_entry(fields)
        out += [message for to, message in envelope.get("batch", ()) if peer_id in to]
    return out
