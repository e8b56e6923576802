#!lua flags=no-cluster,allow-oom
-- HEARTBEAT: one host's heartbeat of a worker, expiring after `ttl`, the host listed, and the
-- worker known to the fleet. Allowed when memory is full: it replaces a value of the same size.
-- KEYS: heartbeat, hosts, workers.  ARGV: consumer, heartbeat JSON, ttl ms, worker.
-- Reply: server time ms
local ttl = tonumber(ARGV[3])
if not ttl or ttl < 1 then return redis.error_reply('ERR heartbeat: bad ttl') end
local now = now_ms()
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
return now
