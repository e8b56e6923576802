#!lua flags=no-cluster,allow-oom
-- HEARTBEAT: one host's heartbeat of a worker, expiring after `ttl`, the host listed, and the
-- worker known to the fleet. Allowed when memory is full: it replaces a value of the same size.
-- Its word goes on the fleet's heartbeats stream (capped: only the latest matter), which the
-- listener follows.
-- KEYS: heartbeat, hosts, workers, heartbeats stream.  ARGV: consumer, heartbeat JSON, ttl ms,
-- worker.
-- Reply: server time ms
local ttl = tonumber(ARGV[3])
if not ttl or ttl < 1 then return redis.error_reply('ERR heartbeat: bad ttl') end
local now = now_ms()
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 'worker', ARGV[4], 'host', ARGV[1])
return now
