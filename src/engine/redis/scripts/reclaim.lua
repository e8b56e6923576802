#!lua flags=no-cluster
-- RECLAIM: take over up to `count` entries (the free slots) that no host renewed for
-- `min_idle` ms (one lease): a dead host's tasks. Each counts a reclaim on its task. Nothing
-- while the worker is paused. The client decides when it may call this (lease.rs).
-- One XAUTOCLAIM per call, from the caller's `cursor`: it looks at no more than 10 x count
-- pending entries, so a call costs the same however many entries are in flight; the caller
-- keeps the returned cursor for its next call ('0-0': the scan went round).
-- Nothing either while the worker's stall key stands (HEARTBEAT), or when no host of the
-- worker wrote a heartbeat for `quiet` ms (the engine or the whole fleet was silent: a
-- CLIENT PAUSE, a failover; every owner's renewals were held up too, so their entries look
-- idle when they are not): the stall key is then set for `hold` ms, so the owners renew
-- first, whichever of their calls the engine runs first once it is back.
-- KEYS: queue, inflight, pause, stall, hosts.  ARGV: group, consumer, min idle ms, count, task
-- prefix, result prefix, cursor, quiet ms (0: no stall rule), hold ms.
-- Reply: {'claimed', next cursor, row...} | {'paused', pttl, ''} | {'stalled', pttl, ''}
local k = {q = KEYS[1], inflight = KEYS[2], group = ARGV[1], consumer = ARGV[2],
  task_prefix = ARGV[5], result_prefix = ARGV[6]}
local min_idle, count = tonumber(ARGV[3]), tonumber(ARGV[4])
if not min_idle or not count or count < 1 then return redis.error_reply('ERR reclaim: bad args') end
local pttl = redis.call('PTTL', KEYS[3])
if pttl ~= -2 then return {'paused', pttl, ''} end
local stall = redis.call('PTTL', KEYS[4])
if stall ~= -2 then return {'stalled', stall, ''} end
local now = now_ms()
local quiet, hold = tonumber(ARGV[8]) or 0, tonumber(ARGV[9]) or 0
if quiet > 0 then
  local last = redis.call('ZREVRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if #last > 0 and now - tonumber(last[2]) > quiet then
    redis.call('SET', KEYS[4], now, 'PX', math.max(1, math.floor(hold)))
    return {'stalled', hold, ''}
  end
end
local r = redis.call('XAUTOCLAIM', k.q, k.group, k.consumer, min_idle, ARGV[7], 'COUNT', count)
local out = {'claimed', r[1]}
for _, e in ipairs(r[2]) do
  out[#out + 1] = take(k, e[1], e[2], now, true)
end
return out
