#!lua flags=no-cluster,allow-oom
-- RENEW: the lease. Resets the idle time of each entry `consumer` still holds (XCLAIM to
-- itself, JUSTID: no delivery counted), and reports the others: 'taken' by another host (its
-- owner named) or 'gone' (acknowledged: a result exists, or it was retried or dead-lettered).
-- Allowed when memory is full: it only resets idle times, and leases must outlive an OOM.
-- KEYS: queue.  ARGV: group, consumer, entry...
-- Reply: {{entry, 'held' | 'taken' | 'gone', holder}...}
local q, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local out, mine = {}, {}
for i = 3, #ARGV do
  local h = holder(q, group, ARGV[i])
  if not h then
    out[#out + 1] = {ARGV[i], 'gone', ''}
  elseif h == consumer then
    mine[#mine + 1] = ARGV[i]
    out[#out + 1] = {ARGV[i], 'held', h}
  else
    out[#out + 1] = {ARGV[i], 'taken', h}
  end
end
if #mine > 0 then
  -- One XCLAIM for all; unpack is bounded by Lua's stack (about 8000 values), and a host
  -- holds far fewer entries than that.
  local args = {'XCLAIM', q, group, consumer, 0}
  for _, e in ipairs(mine) do args[#args + 1] = e end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return out
