#!lua flags=no-cluster
-- PROMOTE: retries whose due time has come on the server's clock go back to the queue (at most
-- `limit` per call). Any host may run it; running it twice moves nothing twice.
-- KEYS: delayed, queue.  ARGV: task prefix, limit.
-- Reply: {moved, ms until the next due retry | -1 when none waits}
local limit = tonumber(ARGV[2])
if not limit or limit < 1 then return redis.error_reply('ERR promote: bad limit') end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local moved = 0
for _, id in ipairs(due) do
  local tk = ARGV[1] .. id
  if redis.call('HGET', tk, 'phase') == 'delayed' then
    local entry = redis.call('XADD', KEYS[2], '*', 'id', id)
    redis.call('HSET', tk, 'phase', 'queued', 'entry', entry)
    redis.call('HDEL', tk, 'due')
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], id)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if #first > 0 then wait = math.max(0, tonumber(first[2]) - now) end
return {moved, wait}
