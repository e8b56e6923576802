#!lua flags=no-cluster,allow-oom
-- TRIM: drops from a fleet stream (results, events) what every consumer group is done with:
-- MINID below each group's oldest pending entry, or its last-delivered-id when none is
-- pending, and below `keep` ms ago (for readers without a group: `submit --wait`). A stream
-- without a group is never trimmed. Task streams are never given to this script.
-- KEYS: stream.  ARGV: keep ms.
-- Reply: {'trimmed', count, minid} | {'kept', why, ''}
local s = KEYS[1]
local keep = tonumber(ARGV[1])
if not keep or keep < 0 then return redis.error_reply('ERR trim: bad keep') end
if redis.call('EXISTS', s) == 0 then return {'kept', 'no stream', ''} end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local groups = redis.call('XINFO', 'GROUPS', s)
if #groups == 0 then return {'kept', 'no consumer group', ''} end
local minid = (now_ms() - keep) .. '-0'
for _, g in ipairs(groups) do
  local name, ldid, pending = false, false, 0
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'last-delivered-id' then ldid = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1] end
  end
  local floor = ldid
  if pending > 0 then floor = redis.call('XPENDING', s, name)[2] end
  if less(floor, minid) then minid = floor end
end
local n = redis.call('XTRIM', s, 'MINID', minid)
return {'trimmed', n, minid}
