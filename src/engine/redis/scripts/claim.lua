#!lua flags=no-cluster
-- CLAIM: deliver up to `count` entries (the free slots, never more) to `consumer`, and record
-- each as held. `start` '>' takes new entries, and nothing while the worker is paused; an id
-- re-reads the consumer's own pending entries after it (recovery after a restart or a lost
-- reply), counting a reclaim when `bump` is '1'.
-- KEYS: queue, inflight, pause.  ARGV: group, consumer, count, start, task prefix, result
-- prefix, bump.
-- Reply: {'claimed', last-delivered-id, row...} (rows: see take) | {'paused', pttl, ldid}
local k = {q = KEYS[1], inflight = KEYS[2], group = ARGV[1], consumer = ARGV[2],
  task_prefix = ARGV[5], result_prefix = ARGV[6]}
local count, start = tonumber(ARGV[3]), ARGV[4]
if not count or count < 1 then return redis.error_reply('ERR claim: bad count') end
if start == '>' then
  local pttl = redis.call('PTTL', KEYS[3])
  if pttl ~= -2 then return {'paused', pttl, last_delivered(k.q, k.group)} end
end
local now = now_ms()
local out = {'claimed', ''}
local got = redis.call('XREADGROUP', 'GROUP', k.group, k.consumer, 'COUNT', count,
  'STREAMS', k.q, start)
if got then
  for _, e in ipairs(got[1][2]) do
    out[#out + 1] = take(k, e[1], e[2], now, start ~= '>' and ARGV[7] == '1')
  end
end
out[2] = last_delivered(k.q, k.group)
return out
