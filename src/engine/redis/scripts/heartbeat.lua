#!lua flags=no-cluster,allow-oom
-- HEARTBEAT: one host's heartbeat of a worker, expiring after `ttl`, the host listed, and the
-- worker known to the fleet. Allowed when memory is full: it replaces a value of the same size.
-- Its word goes on the fleet's heartbeats stream (capped: only the latest matter), which the
-- listener follows.
-- The stall rule (`quiet` > 0): when no host of the worker wrote a heartbeat for `quiet` ms
-- before this one, the engine or the whole fleet was silent (CLIENT PAUSE, a failover, a
-- frozen network) rather than one host dead: every host's renewals were held up too, so their
-- entries look idle when they are not. The stall key is then set for `hold` ms, and RECLAIM
-- takes nothing while it stands, which gives every host time to renew first. One host alone
-- keeps its own heartbeats coming, so a lone survivor still reclaims.
-- KEYS: heartbeat, hosts, workers, heartbeats stream, stall.  ARGV: consumer, heartbeat JSON,
-- ttl ms, worker, quiet ms (0: no stall rule), hold ms.
-- Reply: server time ms
local ttl, quiet, hold = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
if not ttl or ttl < 1 or not quiet or not hold then return redis.error_reply('ERR heartbeat: bad args') end
local now = now_ms()
if quiet > 0 then
  local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #last > 0 and now - tonumber(last[2]) > quiet then
    redis.call('SET', KEYS[5], now, 'PX', math.max(1, math.floor(hold)))
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 'worker', ARGV[4], 'host', ARGV[1])
return now
