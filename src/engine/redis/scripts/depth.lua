#!lua flags=no-cluster,allow-oom
-- DEPTH: what waits in a worker's queue, for heartbeats and `watcherctl status`: entries in the
-- stream, those of them delivered and not done with (pending, whoever holds them), and retries
-- waiting in the delayed set. Queued and not delivered = length - pending. Reads only.
-- KEYS: queue, delayed.  ARGV: group.
-- Reply: {length, pending, delayed}
local len = redis.call('XLEN', KEYS[1])
local pending = 0
if len > 0 then
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
  if type(p) == 'table' and p[1] then pending = p[1] end
end
return {len, pending, redis.call('ZCARD', KEYS[2])}
