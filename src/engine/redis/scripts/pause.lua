#!lua flags=no-cluster,allow-oom
-- PAUSE: stop every host's claims of the worker for `ms` (a rate limit hit on one host), or
-- keep a longer pause already set.
-- KEYS: pause.  ARGV: ms, why.
-- Reply: ms the pause lasts from now (-1: set by hand, without end)
local ms = tonumber(ARGV[1])
if not ms or ms < 1 then return redis.error_reply('ERR pause: bad ms') end
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left >= ms then return left end
redis.call('SET', KEYS[1], ARGV[2], 'PX', math.floor(ms))
return math.floor(ms)
